"""Effect tests of the batch samplers through the real ``trainer.fit``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.effects.harness import record_fit, topic_of


def _purity(steps) -> float:
    """Share of in-batch pairs (i < j) whose queries share a planted topic."""
    same = total = 0
    for s in steps:
        topics = [topic_of(q) for q in s.qids]
        for i in range(len(topics)):
            for j in range(i + 1, len(topics)):
                same += topics[i] == topics[j]
                total += 1
    return same / total


def test_ngame_clusters_shape_epoch0_batches(tmp_path) -> None:
    def labels(run):
        lab = run.dm.batch_sampler._labels
        return None if lab is None else lab.copy()

    rec = record_fit(tmp_path, ["+sampler=ngame", "trainer.max_epochs=2"], probe=labels)
    sampler = rec.run.dm.batch_sampler
    assert rec.epoch(0), "no training step in epoch 0"
    # every batch, epoch 0 included, is made of whole clusters of the clustering in force:
    # batch 16 = 2 clusters of 8
    for s in rec.epoch(0) + rec.epoch(1):
        assert s.probe is not None, f"epoch {s.epoch}: trained before any clustering"
        assert len({int(s.probe[i]) for i in s.idx}) <= 2, s.idx
    # and cluster-mates share planted topics: well above a random batch (7/63 = 0.11)
    assert _purity(rec.epoch(0)) > 0.25
    fx = sampler.effect()
    assert fx["batches_from_clusters"] >= len(rec.epoch(0)) + len(rec.epoch(1))


def test_random_baseline_batches_are_mixed(tmp_path) -> None:
    rec = record_fit(tmp_path, [])
    assert _purity(rec.epoch(0)) < 0.2


def test_ngame_loss_differs_from_baseline_from_the_first_step(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base = record_fit(tmp_path / "a", [])
    ngame = record_fit(tmp_path / "b", ["+sampler=ngame"])
    assert base.steps[0].idx != ngame.steps[0].idx
    assert base.losses[0] != pytest.approx(ngame.losses[0], abs=1e-6)


def test_every_epoch_trains_each_pair_once(tmp_path) -> None:
    rec = record_fit(tmp_path, ["+sampler=ngame", "trainer.max_epochs=2"])
    n = len(rec.run.pairs)
    for e in (0, 1):
        seen = np.sort(np.concatenate([s.idx for s in rec.epoch(e)]))
        assert seen.tolist() == list(range(n))


def _pairs_per_epoch(rec, e: int) -> list[int]:
    return sorted(i for s in rec.epoch(e) for i in s.idx)


# -- TAS-Balanced --------------------------------------------------------------------------------
# 5 clusters of the 8 planted topics: cluster sizes (multiples of 8) that are not all multiples
# of the batch size 16, so some cluster ends an epoch with a remainder
TAS = ["+sampler=tas_balanced", "sampler.n_clusters=5", "sampler.num_negatives=2",
       "sampler.n_candidates=8", "trainer.max_epochs=2"]


def _clusters(run):
    clusters = run.dm.batch_sampler.clusters
    return None if clusters is None else [c.copy() for c in clusters]


@pytest.mark.slow
def test_tas_balanced_epoch_trains_each_pair_once(tmp_path) -> None:
    rec = record_fit(tmp_path, TAS, probe=_clusters)
    n = len(rec.run.pairs)
    sampler = rec.run.dm.batch_sampler
    sizes = [len(c) for c in rec.steps[0].probe]
    assert any(s % 16 for s in sizes), f"clusters {sizes} leave no remainder: no test"
    for e in (0, 1):
        steps = rec.epoch(e)
        assert _pairs_per_epoch(rec, e) == list(range(n)), f"epoch {e}"
        assert len(steps) == len(sampler) == -(-n // 16)   # what Lightning was told
        assert all(s.batch_size == 16 for s in steps[:-1])  # only the last batch may be short
