"""A strategy's cost in texts does not depend on what the embedding cache already held: the
second identical run is served from the cache, and reports the same counts."""

from __future__ import annotations

import os
from pathlib import Path

from tests.effects.harness import compose_cfg, planted_data


def _train(tmp: Path, overrides: list[str]) -> dict[str, float]:
    """``hnm train``'s steps on the planted data, with the run's embedding cache active."""
    from hnm import train as T
    from hnm.cache import activate

    tmp.mkdir()
    old = Path.cwd()
    os.chdir(tmp)
    try:
        run = T.build(compose_cfg(overrides), data=planted_data())
        with activate(run.cache):
            T.prepare(run)
            T.fit(run)
            T.report(run)
        T.cleanup(run)
    finally:
        os.chdir(old)
    return run.metrics


def test_counts_are_the_same_cold_and_warm(tmp_path: Path) -> None:
    cache = [f"paths.cache_dir={tmp_path / 'cache'}", "cache.embeddings=true",
             "eval.zero_shot=true", "+miner=dense_static", "miner.num_negatives=2"]
    cold = _train(tmp_path / "cold", cache)
    warm = _train(tmp_path / "warm", cache)
    assert cold["cache/cached_texts"] < warm["cache/cached_texts"]  # the cache served more
    for key in ("compute/nograd_texts_strategy", "compute/nograd_texts_eval",
                "compute/texts_with_grad"):
        assert cold[key] == warm[key], key
    # the miner embedded the training queries and the corpus once before training
    assert cold["compute/nograd_texts_strategy"] > 0
    # each step encodes its queries, positives and 2 negatives per query with gradient
    assert cold["compute/texts_with_grad"] == 4 * cold["train/pairs"]
