"""NGAMESampler: batches hold cluster-mates of the current encoder's embedding space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError
from hnm.samplers.ngame import NGAMESampler, _similarity_stats
from hnm.types import BatchSampler, EmbedFn

CONF = Path(__file__).resolve().parents[2] / "conf" / "sampler" / "ngame.yaml"


def make_pairs(n: int) -> TrainPairs:
    data = RetrievalData(
        name="toy",
        corpus={f"d{i}": {"title": "", "text": f"document {i}"} for i in range(n)},
        queries={f"q{i}": f"query {i}" for i in range(n)},
        qrels={"train": {f"q{i}": {f"d{i}": 1} for i in range(n)}},
    )
    return TrainPairs.from_split(data, "train")


def planted_embed(texts_of_pairs: list[str], group: np.ndarray, dim: int = 32,
                  seed: int = 0) -> EmbedFn:
    """An embed function that puts pair ``i``'s text near the centre of ``group[i]``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((group.max() + 1, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = centres[group] + 0.02 * rng.standard_normal((len(group), dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    table = dict(zip(texts_of_pairs, points.astype(np.float32)))

    def f(texts: Sequence[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts])

    return f


def random_groups(n: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(n // size), size))


def groups_per_batch(batches: list[list[int]], group: np.ndarray) -> list[int]:
    return [len(set(group[b].tolist())) for b in batches]


def batch_purity(batch: list[int], group: np.ndarray, k: int) -> float:
    """Share of a batch that belongs to its ``k`` most common groups."""
    return float(np.sort(np.bincount(group[batch]))[::-1][:k].sum() / len(batch))


def mean_purity(batches: list[list[int]], group: np.ndarray, k: int) -> float:
    return float(np.mean([batch_purity(b, group, k) for b in batches]))


def unused(texts: Sequence[str]) -> np.ndarray:
    raise AssertionError("this embed function should not be called")


def check_epoch(sampler: NGAMESampler, n: int) -> list[list[int]]:
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(n))
    return batches


def test_batches_hold_planted_cluster_mates() -> None:
    n, size, bs = 256, 8, 32
    pairs = make_pairs(n)
    group = random_groups(n, size, seed=0)
    s = NGAMESampler(pairs, batch_size=bs, seed=0, cluster_size=size)
    assert isinstance(s, BatchSampler)
    s.set_epoch(0)
    before = check_epoch(s, n)  # no clusters yet: random batches
    assert mean_purity(before, group, bs // size) < 0.5
    assert s.needs_refresh(0)
    stats = s.refresh(planted_embed(pairs.query_texts(), group), unused)
    assert stats["num_clusters"] == n // size and stats["cluster_size"] == size
    assert stats["intra_cluster_sim"] > 0.8 > stats["random_pair_sim"] + 0.5
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = check_epoch(s, n)
        # each batch is batch_size // cluster_size clusters, each (almost always) one group
        assert mean_purity(batches, group, bs // size) >= 0.9
        assert np.median(groups_per_batch(batches, group)) <= bs // size
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first, "clusters and their order are reshuffled every epoch"


def test_refresh_follows_the_current_encoder() -> None:
    n, size, bs = 128, 8, 16
    pairs = make_pairs(n)
    group_a, group_b = random_groups(n, size, seed=1), random_groups(n, size, seed=2)
    s = NGAMESampler(pairs, batch_size=bs, seed=0, cluster_size=size, refresh_every=1)
    s.set_epoch(0)
    s.refresh(planted_embed(pairs.query_texts(), group_a, seed=1), unused)
    batches = check_epoch(s, n)
    assert mean_purity(batches, group_a, bs // size) >= 0.9
    assert mean_purity(batches, group_b, bs // size) < 0.6

    s.set_epoch(1)
    assert s.needs_refresh(1)
    s.refresh(planted_embed(pairs.query_texts(), group_b, seed=2), unused)
    batches = check_epoch(s, n)
    assert mean_purity(batches, group_b, bs // size) >= 0.9
    assert mean_purity(batches, group_a, bs // size) < 0.6


@pytest.mark.parametrize("embed", ["positive", "both"])
def test_embed_modes(embed: str) -> None:
    n, size, bs = 64, 8, 16
    pairs = make_pairs(n)
    group = random_groups(n, size, seed=3)
    docs = planted_embed(pairs.positive_texts(), group, seed=3)
    if embed == "positive":
        queries: EmbedFn = unused
    else:  # queries agree with the documents' groups
        queries = planted_embed(pairs.query_texts(), group, seed=3)
    s = NGAMESampler(pairs, batch_size=bs, cluster_size=size, embed=embed)  # type: ignore[arg-type]
    s.refresh(queries, docs)
    assert mean_purity(check_epoch(s, n), group, bs // size) >= 0.9


def test_refresh_schedule_warmup_and_growth() -> None:
    pairs = make_pairs(64)
    embed = planted_embed(pairs.query_texts(), random_groups(64, 8, seed=0))
    s = NGAMESampler(pairs, batch_size=32, cluster_size=4, refresh_every=2, warmup_epochs=1,
                     cluster_size_schedule="double", grow_every=2, max_cluster_size=16)
    assert [s.cluster_size_at(e) for e in range(8)] == [4, 4, 4, 8, 8, 16, 16, 16]
    assert not s.needs_refresh(0)
    s.set_epoch(1)
    assert s.needs_refresh(1)
    assert s.refresh(embed, unused)["cluster_size"] == 4
    assert not s.needs_refresh(2)  # refresh_every=2
    assert s.needs_refresh(3)  # size grows to 8 (and two epochs passed)
    s.set_epoch(3)
    assert s.refresh(embed, unused)["num_clusters"] == 8
    assert not s.needs_refresh(4)
    assert s.needs_refresh(5)


def test_cluster_size_one_needs_no_embedding() -> None:
    s = NGAMESampler(make_pairs(10), batch_size=4, cluster_size=1)
    assert s.refresh(unused, unused)["num_clusters"] == 10
    check_epoch(s, 10)


def test_random_fraction_and_drop_last_keep_the_contract() -> None:
    n, size, bs = 256, 8, 32
    pairs = make_pairs(n)
    group = random_groups(n, size, seed=4)
    s = NGAMESampler(pairs, batch_size=bs, cluster_size=size, random_fraction=0.5, seed=1)
    s.refresh(planted_embed(pairs.query_texts(), group, seed=4), unused)
    batches = check_epoch(s, n)
    mixed = [batch_purity(b, group, bs // size) < 0.6 for b in batches]
    assert sum(mixed) == round(0.5 * len(batches))
    n = 200
    pairs = make_pairs(n)
    d = NGAMESampler(pairs, batch_size=bs, cluster_size=size, drop_last=True)
    d.refresh(planted_embed(pairs.query_texts(), random_groups(n, size, seed=5)), unused)
    batches = list(d)
    assert len(batches) == len(d) == n // bs and all(len(b) == bs for b in batches)
    assert len({i for b in batches for i in b}) == n // bs * bs


def test_deterministic_per_seed_and_epoch() -> None:
    pairs = make_pairs(96)
    embed = planted_embed(pairs.query_texts(), random_groups(96, 8, seed=5))
    runs = []
    for _ in range(2):
        s = NGAMESampler(pairs, batch_size=16, seed=7)
        s.set_epoch(2)
        s.refresh(embed, unused)
        runs.append(list(s))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("kwargs,match", [
    ({"embed": "title"}, "query, positive, both"),
    ({"cluster_size_schedule": "linear"}, "constant, double"),
    ({"cluster_size": 64}, "cluster_size"),
    ({"cluster_size": 8, "max_cluster_size": 4}, "cluster_size"),
    ({"refresh_every": 0}, "refresh_every"),
    ({"random_fraction": 1.5}, "random_fraction"),
])
def test_rejects_bad_knobs(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NGAMESampler(make_pairs(8), batch_size=32, **kwargs)


def test_similarity_stats_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((23, 5)).astype(np.float32)
    clusters = np.split(rng.permutation(23), [3, 9, 10, 17])
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    intra = [x[i] @ x[j] for c in clusters for i in c for j in c if i != j]
    every = [x[i] @ x[j] for i in range(23) for j in range(23) if i != j]
    got = _similarity_stats(emb, clusters)
    assert got == pytest.approx((np.mean(intra), np.mean(every)), abs=1e-5)


def test_hydra_config_instantiates() -> None:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    partial = instantiate(OmegaConf.load(CONF))
    s = partial(pairs=make_pairs(40), batch_size=16, seed=0, drop_last=False)
    assert isinstance(s, NGAMESampler) and isinstance(s, BatchSampler)
    assert s.embed == "query" and s.cluster_size == 8 and len(s) == 3


def test_refresh_end_to_end_with_the_tiny_encoder() -> None:
    from hnm.encoders import embed_fn, tiny_encoder

    topics = ["sort a list", "open a file", "parse json", "http request", "regex match",
              "date format"]
    queries, corpus, qrels = {}, {}, {}
    for t, topic in enumerate(topics):
        for k in range(4):
            qid, did = f"q{t}_{k}", f"d{t}_{k}"
            queries[qid] = f"how to {topic} variant {k}"
            corpus[did] = {"title": topic, "text": f"example code to {topic} number {k}"}
            qrels[qid] = {did: 1}
    pairs = TrainPairs.from_split(RetrievalData("mini", corpus, queries, {"train": qrels}))
    model = tiny_encoder(seed=0)
    embed = embed_fn(model, batch_size=8, progress=False)
    for mode in ("query", "both"):
        s = NGAMESampler(pairs, batch_size=8, seed=0, cluster_size=4, embed=mode)  # type: ignore[arg-type]
        s.set_epoch(0)
        assert s.needs_refresh(0)
        stats = s.refresh(embed, embed)
        assert stats["num_clusters"] == 6 and stats["embed_seconds"] > 0
        assert stats["intra_cluster_sim"] >= stats["random_pair_sim"]
        check_epoch(s, len(pairs))
        assert not s.needs_refresh(0) and s.needs_refresh(1)
