"""TAS-Balanced: one cluster per batch, negatives balanced over margin bins, never positives."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError
from hnm.samplers.tas_balanced import (
    SamplerNegatives,
    TASBalancedSampler,
    balanced_choice,
    margin_bins,
)
from hnm.types import BatchSampler, Miner

N_TOPICS, PER_TOPIC, N_NEG = 4, 24, 40


def planted(seed: int = 0):
    """Queries in 4 planted topics; 40 shared negative documents whose teacher scores are
    heavily skewed (32 crowd into a narrow band near the top, 8 spread below).

    Dimensions: [topic (4) | score axis | filler | one per query]. A query is its topic
    direction plus the score axis plus its own axis, normalised (about 1/sqrt(3) each); its
    positive lies on its own axis, a negative on the score axis scaled by its ``level``
    (0.05 to 0.9), so every query sees the same margins, about (1 - level) / sqrt(3), and
    other queries' positives (score 0) rank below every negative.
    """
    rng = np.random.default_rng(seed)
    n_q = N_TOPICS * PER_TOPIC
    dim = N_TOPICS + 2 + n_q
    corpus, queries, qrels, table = {}, {}, {}, {}
    topic = np.repeat(np.arange(N_TOPICS), PER_TOPIC)
    for i in range(n_q):
        v = np.zeros(dim)
        v[topic[i]] = 1.0 + 0.05 * rng.standard_normal()
        v[N_TOPICS] = 1.0
        v[N_TOPICS + 2 + i] = 1.0
        queries[f"q{i}"] = f"query {i}"
        table[f"query {i}"] = v / np.linalg.norm(v)
        w = np.zeros(dim)
        w[N_TOPICS + 2 + i] = 1.0
        corpus[f"p{i}"] = {"title": "", "text": f"positive {i}"}
        table[f"positive {i}"] = w
        qrels[f"q{i}"] = {f"p{i}": 1}
    levels = np.concatenate([np.linspace(0.86, 0.9, 32), np.linspace(0.05, 0.8, 8)])
    for j, level in enumerate(levels):
        w = np.zeros(dim)
        w[N_TOPICS] = level
        w[N_TOPICS + 1] = np.sqrt(1 - level**2)
        corpus[f"n{j}"] = {"title": "", "text": f"negative {j}"}
        table[f"negative {j}"] = w
    data = RetrievalData("planted", corpus, queries, {"train": qrels})

    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts]).astype(np.float32)

    return TrainPairs.from_split(data, "train"), topic, embed


def test_batches_hold_queries_of_one_cluster() -> None:
    pairs, topic, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, seed=1, n_clusters=N_TOPICS, num_negatives=0)
    assert isinstance(s, BatchSampler)
    assert s.needs_refresh(0)
    s.refresh(embed, embed)
    assert not s.needs_refresh(0) and not s.needs_refresh(5)   # clustered once (the paper)
    topic_of_pair = {i: topic[int(pairs.qids[i][1:])] for i in range(len(pairs))}
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == len(pairs) // 8
        for b in batches:
            assert len(b) == 8 and len(set(b)) == 8
            assert len({topic_of_pair[i] for i in b}) == 1, b
        seen = {i for b in batches for i in b}
        assert len(seen) == len(pairs)   # cluster sizes are multiples of 8: one full pass


def test_random_batches_before_the_first_refresh() -> None:
    pairs, _, _ = planted()
    s = TASBalancedSampler(pairs, batch_size=10, n_clusters=4)
    assert sorted(i for b in s for i in b) == list(range(len(pairs)))
    with pytest.raises(RuntimeError, match="refresh"):
        s.negatives_for([0])


def test_margin_bins_are_sampled_evenly() -> None:
    pairs, _, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, seed=0, n_clusters=N_TOPICS, num_negatives=1,
                           n_candidates=N_NEG, n_bins=4)
    stats = s.refresh(embed, embed)
    assert stats["candidates_per_query"] == N_NEG
    assert s.bins is not None and s.cand_rows is not None
    assert {s.doc_ids[r][0] for r in s.cand_rows.ravel()} == {"n"}  # only the negatives
    occupancy = np.bincount(s.bins[0], minlength=4)
    assert occupancy[0] >= 32 and occupancy.min() >= 1        # the planted skew
    picked = np.concatenate([s.bins[np.arange(len(pairs)), s.chosen_columns(e)[:, 0]]
                             for e in range(10)])
    counts = np.bincount(picked, minlength=4)
    expected = len(picked) / 4
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.3, counts                                  # chi2(3) at p = 0.001
    # uniform sampling of candidates would put 80% in the crowded bin
    assert counts[0] < 0.35 * len(picked)


def test_negatives_and_teacher_scores() -> None:
    pairs, _, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, n_clusters=N_TOPICS, num_negatives=3,
                           n_candidates=N_NEG, n_bins=4)
    s.refresh(embed, embed)
    miner = s.as_miner()
    assert isinstance(miner, Miner) and isinstance(miner, SamplerNegatives)
    assert not miner.needs_refresh(0)
    ids, teacher = miner.negatives([0, 5, 17], epoch=2, step=0)
    assert teacher is not None and teacher.shape == (3, 4)
    for row, pair, t in zip(ids, [0, 5, 17], teacher):
        assert len(row) == 3 == len(set(row))
        assert pairs.pos_ids[pair] not in row
        q = embed([pairs.query(pair)])[0]
        d = embed([pairs.positive(pair)] + [pairs.data.doc_text(x) for x in row])
        np.testing.assert_allclose(t, d @ q, atol=1e-5)         # teacher = the encoder's scores
    again, _ = s.negatives_for([0, 5, 17], epoch=2)
    assert again == ids                                         # deterministic per epoch
    other = [s.negatives_for(list(range(len(pairs))), epoch=e)[0] for e in (3, 4)]
    assert other[0] != other[1]                                 # a fresh draw every epoch


def test_small_corpus_pads_with_unknown_teacher_scores() -> None:
    pairs, _, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, n_clusters=2, num_negatives=2, n_candidates=2)
    s.refresh(embed, embed)
    s.cand_rows[:, 1] = -1  # pretend the corpus ran out after one candidate
    s.bins = np.where(s.cand_rows[s.query_of] >= 0, s.bins, -1)
    s._choice = None
    ids, teacher = s.negatives_for([0, 1], epoch=0)
    assert all(len(r) == 2 for r in ids) and np.isnan(teacher[:, 2]).all()
    assert np.isfinite(teacher[:, :2]).all()


def test_balanced_choice_brute_force_properties() -> None:
    rng = np.random.default_rng(0)
    bins = np.array([[0, 0, 0, 0, 1, -1], [2, 2, -1, -1, -1, -1], [-1] * 6])
    out = balanced_choice(bins, 3, k=3, rng=rng)
    assert out[2].tolist() == [-1, -1, -1]                      # nothing to pick
    assert sorted(out[1].tolist()) == [-1, 0, 1]                # two candidates only
    assert len(set(out[0].tolist())) == 3 and all(bins[0, c] >= 0 for c in out[0])
    first = np.array([balanced_choice(bins[:1], 3, 1, np.random.default_rng(s))[0, 0]
                      for s in range(2000)])
    assert abs((first == 4).mean() - 0.5) < 0.05                # bin 1 (one member): half


def test_margin_bins_equal_width() -> None:
    m = np.array([[0.0, 0.1, 0.5, 0.99, 1.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    valid = np.array([[True] * 5, [True, True, True, False, False]])
    assert margin_bins(m, valid, 4).tolist() == [[0, 0, 2, 3, 3], [0, 0, 0, -1, -1]]
    assert margin_bins(m, valid, 4, per_row=False)[0].tolist() == [0, 0, 1, 1, 2]


def test_bad_knobs() -> None:
    pairs, _, _ = planted()
    with pytest.raises(ConfigError, match="bin_range"):
        TASBalancedSampler(pairs, 8, bin_range="bogus")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_candidates"):
        TASBalancedSampler(pairs, 8, num_negatives=5, n_candidates=2)


@pytest.mark.parametrize("batch_size", [5, 7, 16])
@pytest.mark.parametrize("drop_last", [False, True])
def test_an_epoch_trains_each_pair_once_in_the_random_samplers_batch_count(
        batch_size: int, drop_last: bool) -> None:
    """Cluster sizes (24) that are no multiple of the batch size leave tails: they form a few
    mixed batches instead of being topped up with pairs drawn already."""
    pairs, topic, embed = planted()
    n = len(pairs)
    s = TASBalancedSampler(pairs, batch_size=batch_size, seed=2, n_clusters=N_TOPICS,
                           num_negatives=0, drop_last=drop_last)
    s.refresh(embed, embed)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s) == (n // batch_size if drop_last else -(-n // batch_size))
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))                       # no pair twice
        if not drop_last:
            assert sorted(flat) == list(range(n))                # every pair once
        assert all(len(b) == batch_size for b in batches[:-1])   # only the last may be short
        mixed = sum(len({topic[int(pairs.qids[i][1:])] for i in b}) > 1 for b in batches)
        assert mixed <= N_TOPICS                                 # the clusters' tails only
    assert s.effect()["batches_from_one_cluster"] >= 3 * (len(s) - N_TOPICS)


def test_effect_counts_one_cluster_batches_and_attached_negatives() -> None:
    pairs, _, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, n_clusters=N_TOPICS, num_negatives=2,
                           n_candidates=N_NEG)
    assert s.effect() == {"batches_from_one_cluster": 0.0, "negatives_attached": 0.0}
    list(s)                                     # before the refresh: random batches
    assert s.effect()["batches_from_one_cluster"] == 0
    s.refresh(embed, embed)
    batches = list(s)
    assert s.effect()["batches_from_one_cluster"] == len(batches)  # 24 = 3 * 8 per cluster
    miner = s.as_miner()
    assert miner is not None
    miner.negatives(batches[0], epoch=0, step=0)
    assert s.effect()["negatives_attached"] == 2 * 8 == miner.effect()["negatives_attached"]


def test_a_single_cluster_counts_no_topic_aware_batch() -> None:
    """With one cluster (the automatic count on small data) the batches are random: the
    effect says so instead of counting every batch as one cluster's."""
    pairs, _, embed = planted()
    s = TASBalancedSampler(pairs, batch_size=8, n_clusters=1, num_negatives=0)
    s.refresh(embed, embed)
    assert len(list(s)) == len(s)
    assert s.effect()["batches_from_one_cluster"] == 0
