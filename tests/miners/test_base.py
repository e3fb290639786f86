"""The shared mining core: positives, sampling per epoch, padding, teacher scores, dense kNN."""

from __future__ import annotations

import numpy as np
import pytest

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError
from hnm.miners.base import MinerBase
from tests.miners.helpers import FixedMiner, no_embed, planted, table_embed


def ranking(n_docs: int, n_queries: int) -> dict[str, list[str]]:
    """Query i ranks its own positive first, then documents in a query-specific order."""
    out = {}
    for i in range(n_queries):
        order = [f"d{(i + 3 * j) % n_docs}" for j in range(n_docs)]
        out[f"q{i}"] = list(dict.fromkeys([f"d{i}", *order]))
    return out


def mined(**kw) -> tuple[FixedMiner, TrainPairs]:
    extra = kw.pop("extra_pos", {"q1": ["d4", "d7"]})
    data, pairs = planted(30, 4, extra)
    miner = FixedMiner(ranking(30, 4), verbose=False, **kw)
    miner.mine(data, pairs, no_embed, no_embed)
    return miner, pairs


def test_positives_are_never_negatives() -> None:
    miner, pairs = mined(num_negatives=8, range_max=None, sampling_strategy="random")
    for epoch in range(3):
        neg, _ = miner.negatives(range(len(pairs)), epoch, 0)
        for qid, row in zip(pairs.qids, neg):
            assert len(row) == 8 and len(set(row)) == 8
            assert not set(row) & pairs.positives[qid]
    assert miner.last_stats["removed_positive"] == sum(len(p) for p in pairs.positives.values())


def test_top_is_the_best_window_every_epoch() -> None:
    miner, pairs = mined(num_negatives=3, range_min=2, range_max=10, sampling_strategy="top")
    i = pairs.qids.index("q0")
    # q0's non-positive ranking: d3, d6, d9, d12, …; skip two
    for epoch in range(3):
        assert miner.negatives([i], epoch, 0)[0][0] == ["d9", "d12", "d15"]


def test_random_samples_the_window_and_varies_by_epoch() -> None:
    miner, pairs = mined(num_negatives=3, range_min=1, range_max=9, sampling_strategy="random")
    i = pairs.qids.index("q0")
    window = {f"d{3 * j % 30}" for j in range(2, 10)}  # ranks 1..8 after the positive
    seen = [tuple(miner.negatives([i], e, 0)[0][0]) for e in range(6)]
    assert all(set(s) <= window for s in seen)
    assert len(set(seen)) > 1  # different epochs, different negatives
    assert seen[0] == tuple(miner.negatives([i], 0, 99)[0][0])  # the step does not matter
    again, _ = mined(num_negatives=3, range_min=1, range_max=9, sampling_strategy="random")
    assert [again.negatives([i], e, 0)[0][0] for e in range(6)] == [list(s) for s in seen]


def test_short_queries_are_padded_and_counted() -> None:
    # every query has fewer non-positive candidates than num_negatives
    data, pairs = planted(12, 3)
    rank = {"q0": ["d0", "d5"], "q1": ["d1", "d2", "d3"], "q2": ["d2", "d4", "d6", "d8"]}
    miner = FixedMiner(rank, num_negatives=4, range_max=None, verbose=False)
    stats = miner.mine(data, pairs, no_embed, no_embed)
    assert stats["short_queries"] == 3 and stats["empty_queries"] == 0
    neg, teacher = miner.negatives([0, 1, 2], 0, 0)
    assert neg[0][0] == "d5" and neg[1][:2] == ["d2", "d3"]
    assert neg[2][:3] == ["d4", "d6", "d8"]
    for qid, row in zip(pairs.qids, neg):
        assert len(row) == 4 and len(set(row)) == 4 and qid.replace("q", "d") not in row
    assert teacher is None
    assert miner.negatives([0, 1, 2], 0, 5)[0] == neg  # deterministic in (seed, epoch, pair)
    pads = {tuple(miner.negatives([0], e, 0)[0][0][1:]) for e in range(5)}
    assert len(pads) > 1


def test_teacher_scores_are_positive_first() -> None:
    miner, pairs = mined(num_negatives=2, sampling_strategy="top", teacher_scores=True)
    neg, teacher = miner.negatives([0, 1], 0, 0)
    assert teacher is not None and teacher.shape == (2, 3)
    np.testing.assert_allclose(teacher[:, 0], 0.9)
    assert (teacher[:, 1:] < 1.0).all() and (np.diff(teacher[:, 1:], axis=1) <= 0).all()


def test_one_search_per_unique_query() -> None:
    data, _ = planted(30, 4, {"q2": ["d9", "d11"]})
    pairs = TrainPairs.from_split(data, "train")  # q2 appears in three pairs
    assert len(pairs) == 6
    miner = FixedMiner(ranking(30, 4), verbose=False, num_negatives=2, sampling_strategy="top")
    miner.mine(data, pairs, no_embed, no_embed)
    assert miner.calls == [4]
    negs, _ = miner.negatives(range(6), 0, 0)
    for qid, row in zip(pairs.qids, negs):
        assert not set(row) & pairs.positives[qid]


def test_dense_candidates_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    data, pairs = planted(40, 6)
    texts = [data.queries[q] for q in data.queries] + [data.doc_text(d) for d in data.corpus]
    table = dict(zip(texts, rng.standard_normal((len(texts), 8))))
    embed = table_embed(table)
    miner = MinerBase(num_negatives=3, range_max=10, sampling_strategy="top", verbose=False)
    miner.mine(data, pairs, embed, embed)
    q = embed([data.queries[x] for x in miner.qids])
    d = embed([data.doc_text(x) for x in miner.doc_ids])
    s = q @ d.T
    for i, qid in enumerate(miner.qids):
        order = [j for j in np.argsort(-s[i], kind="stable") if miner.doc_ids[j] != f"d{qid[1:]}"]
        assert miner.pool.idx[i, :3].tolist() == order[:3]
        np.testing.assert_allclose(miner.pool.scores[i, :3], s[i, order[:3]], atol=1e-5)
        slot = miner.pos_q.tolist().index(i)
        assert miner.pos_scores[slot] == pytest.approx(s[i, miner.doc_row[f"d{qid[1:]}"]],
                                                       abs=1e-5)


def test_records_list_the_pool_with_scores() -> None:
    miner, pairs = mined(num_negatives=2, range_max=5, sampling_strategy="random")
    recs = {r["qid"]: r for r in miner.records()}
    assert set(recs) == set(pairs.qids)
    assert sorted(recs["q1"]["pos_ids"]) == ["d1", "d4", "d7"]
    assert len(recs["q0"]["neg_ids"]) == len(recs["q0"]["neg_scores"]) == 5


@pytest.mark.parametrize(("kw", "word"), [
    ({"sampling_strategy": "hardest"}, "top, random"),
    ({"num_negatives": 0}, "num_negatives"),
    ({"range_min": 5, "range_max": 5}, "range_max"),
])
def test_bad_knobs_are_config_errors(kw: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        MinerBase(**kw)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_indexes_fill_every_slot(index: str) -> None:
    rng = np.random.default_rng(3)
    data, pairs = planted(200, 8)
    texts = [data.queries[q] for q in data.queries] + [data.doc_text(d) for d in data.corpus]
    embed = table_embed(dict(zip(texts, rng.standard_normal((len(texts), 8)))))
    miner = MinerBase(num_negatives=4, range_max=20, index=index, backend="faiss", verbose=False)
    miner.mine(data, pairs, embed, embed)
    negs, _ = miner.negatives(range(len(pairs)), 0, 0)
    for qid, row in zip(pairs.qids, negs):
        assert len(set(row)) == 4 and not set(row) & pairs.positives[qid]
