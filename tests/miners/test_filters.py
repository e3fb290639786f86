"""The candidate filters against a brute-force loop, and their algorithmic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hnm.miners.filters import select


def brute_select(idx, scores, positive, pos_score, range_min, range_max, am, rm, mx, mn, limit):
    """One query at a time, one candidate at a time."""
    pools, counts = [], {}

    def bump(key):
        counts[key] = counts.get(key, 0) + 1

    for i in range(len(idx)):
        rank, kept = 0, []
        for j in range(len(idx[i])):
            if idx[i][j] < 0:
                continue
            if positive[i][j]:
                bump("removed_positive")
                continue
            r, rank = rank, rank + 1
            if r < range_min or (range_max is not None and r >= range_max):
                bump("removed_range")
                continue
            s, p = float(scores[i][j]), float(pos_score[i])
            if am is not None and s > p - am:
                bump("removed_absolute_margin")
            elif rm is not None and s > p - abs(p) * rm:
                bump("removed_relative_margin")
            elif mx is not None and s > mx:
                bump("removed_max_score")
            elif mn is not None and s < mn:
                bump("removed_min_score")
            else:
                kept.append((int(idx[i][j]), s))
        pools.append(kept[:limit] if limit is not None else kept)
    return pools, counts


@pytest.mark.parametrize("seed", range(6))
def test_select_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nq, k = 13, 40
    scores = -np.sort(-rng.uniform(-0.3, 1.0, (nq, k)), axis=1).astype(np.float32)
    idx = rng.permutation(1000)[: nq * k].reshape(nq, k).astype(np.int64)
    idx[rng.random((nq, k)) < 0.05] = -1
    positive = (rng.random((nq, k)) < 0.1) & (idx >= 0)
    pos_score = rng.uniform(-0.2, 1.0, nq).astype(np.float32)
    knobs = dict(range_min=int(rng.integers(0, 4)), range_max=[None, 25, 8][seed % 3],
                 am=[None, 0.05, 0.0][seed % 3], rm=[0.05, None, 0.1][seed % 3],
                 mx=[None, 0.9][seed % 2], mn=[None, 0.0][seed % 2], limit=[None, 3][seed % 2])
    pool, counts = select(idx, scores, positive, pos_score, knobs["range_min"],
                          knobs["range_max"], knobs["am"], knobs["rm"], knobs["mx"],
                          knobs["mn"], knobs["limit"])
    ref, ref_counts = brute_select(idx, scores, positive, pos_score, knobs["range_min"],
                                   knobs["range_max"], knobs["am"], knobs["rm"], knobs["mx"],
                                   knobs["mn"], knobs["limit"])
    for i, kept in enumerate(ref):
        assert pool.count[i] == len(kept)
        assert pool.idx[i, : len(kept)].tolist() == [d for d, _ in kept]
        np.testing.assert_allclose(pool.scores[i, : len(kept)], [s for _, s in kept])
        assert (pool.idx[i, len(kept):] == -1).all()
    for key in [k for k in counts if k.startswith("removed_")]:
        assert counts[key] == ref_counts.get(key, 0), key
    assert counts["kept"] == sum(map(len, ref))


def test_positives_never_kept() -> None:
    idx = np.array([[5, 7, 9, 11]])
    positive = np.array([[True, False, True, False]])
    pool, counts = select(idx, np.array([[0.9, 0.8, 0.7, 0.6]]), positive, np.array([0.5]))
    assert pool.idx[0].tolist() == [7, 11] and counts["removed_positive"] == 2


def test_rank_window_counts_ranks_without_positives() -> None:
    idx = np.arange(10)[None, :]
    positive = np.zeros((1, 10), bool)
    positive[0, 1] = True  # rank list without positives: 0,2,3,4,...
    pool, counts = select(idx, -np.arange(10.0)[None, :], positive, np.array([1.0]),
                          range_min=2, range_max=5)
    assert pool.idx[0, : pool.count[0]].tolist() == [3, 4, 5]
    assert counts["removed_range"] == 6


def test_margins_drop_exactly_those_near_the_positive() -> None:
    scores = np.array([[0.95, 0.85, 0.80, 0.76, 0.70]], np.float32)
    idx = np.arange(5)[None, :]
    none = np.zeros((1, 5), bool)
    # absolute: drop s > 0.8 - 0.05 = 0.75 -> keeps 0.70 only
    pool, c = select(idx, scores, none, np.array([0.8]), absolute_margin=0.05)
    assert pool.idx[0, : pool.count[0]].tolist() == [4] and c["removed_absolute_margin"] == 4
    # relative: drop s > 0.8 * 0.95 = 0.76 -> keeps 0.76, 0.70
    pool, c = select(idx, scores, none, np.array([0.8]), relative_margin=0.05)
    assert pool.idx[0, : pool.count[0]].tolist() == [3, 4]
    # negative positive score: the bar is pos - |pos| * m, below the positive
    pool, _ = select(idx, -scores, none, np.array([-0.8]), relative_margin=0.05)
    assert pool.idx[0, : pool.count[0]].tolist() == [0, 1]  # -0.95, -0.85 <= -0.84
    # NaN positive score: nothing to compare with, nothing dropped
    pool, _ = select(idx, scores, none, np.array([math.nan]), relative_margin=0.05)
    assert pool.count[0] == 5
