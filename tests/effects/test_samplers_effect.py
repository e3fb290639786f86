"""Effect tests of the batch samplers through the real ``trainer.fit``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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


@pytest.fixture(scope="module")
def tas_run(tmp_path_factory):
    return record_fit(tmp_path_factory.mktemp("tas"), TAS, probe=_clusters)


@pytest.mark.slow
def test_tas_balanced_epoch_trains_each_pair_once(tas_run) -> None:
    rec = tas_run
    n = len(rec.run.pairs)
    sampler = rec.run.dm.batch_sampler
    sizes = [len(c) for c in rec.steps[0].probe]
    assert any(s % 16 for s in sizes), f"clusters {sizes} leave no remainder: no test"
    for e in (0, 1):
        steps = rec.epoch(e)
        assert _pairs_per_epoch(rec, e) == list(range(n)), f"epoch {e}"
        assert len(steps) == len(sampler) == -(-n // 16)   # what Lightning was told
        assert all(s.batch_size == 16 for s in steps[:-1])  # only the last batch may be short


@pytest.mark.slow
def test_tas_balanced_batches_come_from_one_cluster_with_its_negatives(tas_run) -> None:
    rec = tas_run
    sampler = rec.run.dm.batch_sampler
    steps = rec.epoch(0) + rec.epoch(1)
    assert rec.epoch(0), "no training step in epoch 0"
    tails = sum(len(c) % 16 for c in rec.steps[0].probe)
    for e in (0, 1):
        one = 0
        for s in rec.epoch(e):
            assert s.probe is not None, f"epoch {e}: trained before any clustering"
            label = {int(i): c for c, members in enumerate(s.probe) for i in members}
            one += len({label[i] for i in s.idx}) == 1
        # every batch from one cluster but the few that hold the clusters' tails
        assert one >= len(rec.epoch(e)) - -(-tails // 16), (e, one)
    assert _purity(rec.epoch(0)) > 0.25                    # random: 7/63 = 0.11
    for s in steps:                                        # the sampler's negatives and scores
        assert s.num_negatives == 2 and s.teacher is not None
        b = s.batch_size
        ids, teacher = sampler.negatives_for(s.idx, s.epoch)
        assert s.doc_ids[b:b + 2 * b] == [d for row in ids for d in row]
        torch.testing.assert_close(s.teacher[range(b), range(b)],
                                   torch.as_tensor(teacher[:, 0]))
        cols = b + torch.arange(b)[:, None] * 2 + torch.arange(2)[None, :]
        torch.testing.assert_close(s.teacher[torch.arange(b)[:, None], cols],
                                   torch.as_tensor(teacher[:, 1:]))
        assert torch.isfinite(s.teacher[torch.arange(b)[:, None], cols]).all()
        for q, row in zip(s.qids, ids):
            assert rec.run.pairs.positives[q].isdisjoint(row)
    fx = sampler.effect()
    assert fx["batches_from_one_cluster"] >= len(steps) - 2 * -(-tails // 16)
    assert fx["negatives_attached"] == 2 * sum(s.batch_size for s in steps)


# -- RS2 -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rs2_epochs_train_the_fraction_and_walk_through_the_data(tmp_path) -> None:
    rec = record_fit(tmp_path, ["+sampler=rs2", "sampler.fraction=0.3", "trainer.max_epochs=4"])
    n = len(rec.run.pairs)
    m = round(0.3 * n)                                   # 19 of 64: a pass is 4 epochs
    epochs = [[i for s in rec.epoch(e) for i in s.idx] for e in range(4)]
    for e, items in enumerate(epochs):
        assert len(items) == len(set(items)) == m, e       # the fraction, each pair once
        assert len(rec.epoch(e)) == len(rec.run.dm.batch_sampler) == 2
    assert set(epochs[0]).isdisjoint(epochs[1]) and set(epochs[1]).isdisjoint(epochs[2])
    assert set().union(*epochs) == set(range(n))          # one pass covers every pair
    fx = rec.run.dm.batch_sampler.effect()
    assert fx == {"pairs_left_out": 4.0 * (n - m), "epochs_subsampled": 4.0}


# -- no_duplicates -------------------------------------------------------------------------------
def duplicated_data():
    """The planted data plus planted duplicates: a query with 6 positives (more than the 5
    batches of a random epoch), a document that is the positive of 3 queries, and two queries
    with the same text."""
    from tests.effects.harness import planted_data

    data = planted_data()
    for j in range(5):
        data.corpus[f"t0_x{j}"] = {"title": "t0.x", "text": f"sort order rank extra {j}"}
        data.qrels["train"]["t0_q00"][f"t0_x{j}"] = 1
    for i in (1, 2):
        data.qrels["train"][f"t1_q0{i}"]["t1_d00"] = 1
    data.queries["t2_qdup"] = data.queries["t2_q00"]
    data.corpus["t2_ddup"] = {"title": "t2.dup", "text": "socket network packet dup"}
    data.qrels["train"]["t2_qdup"] = {"t2_ddup": 1}
    return data


@pytest.mark.slow
def test_no_duplicates_batches_repeat_no_text_and_train_each_pair_once(tmp_path) -> None:
    data = duplicated_data()
    rec = record_fit(tmp_path, ["+sampler=no_duplicates", "trainer.max_epochs=2"], data=data)
    pairs = rec.run.pairs
    n = len(pairs)
    texts = [pairs.query_texts(), pairs.positive_texts()]
    every = [t for i in range(n) for t in (texts[0][i], texts[1][i])]
    assert len(set(every)) < 2 * n - 6                   # the planted duplicates are there
    for e in (0, 1):
        steps = rec.epoch(e)
        assert _pairs_per_epoch(rec, e) == list(range(n)), f"epoch {e}"
        assert len(steps) == len(rec.run.dm.batch_sampler)
        for s in steps:
            batch = [t for i in s.idx for t in (texts[0][i], texts[1][i])]
            assert len(set(batch)) == len(batch), (e, s.idx)
    assert rec.run.dm.batch_sampler.effect()["duplicates_avoided"] > 0
