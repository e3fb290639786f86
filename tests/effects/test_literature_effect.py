"""Effect tests through the real ``trainer.fit`` of NBPO, taxonomy negatives, the difficulty
curriculum and InfoNCE's directions and hardness: from epoch 0 on, what reached the loss is what
each one defines, and it changed the loss (or, for the defaults, changed nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hnm.losses.nbpo import NBPOLoss
from tests.effects.harness import planted_data, record_fit, topic_of
from tests.effects.miner_probes import (
    Ranker,
    false_negative,
    keep_start,
    negatives,
    with_false_negatives,
)

QUIET = "miner.verbose=false"
GTE = "loss.directions=[query_to_doc,doc_to_query,query_to_query,doc_to_doc]"


# -- InfoNCE directions and hardness --------------------------------------------------------
@pytest.mark.slow
def test_directions_and_hardness_change_the_loss_on_the_same_batches(tmp_path,
                                                                      baseline) -> None:
    rec = record_fit(tmp_path, [GTE, "loss.hardness_mode=in_batch_negatives",
                                "loss.hardness_strength=9"])
    assert [s.idx for s in rec.steps] == [s.idx for s in baseline.steps]
    a, b = rec.steps[0], baseline.steps[0]
    assert a.loss > b.loss + 0.1  # three more directions and heavier negatives in the softmax
    for s in rec.steps:
        assert s.per_query is not None and torch.isfinite(s.per_query).all()
    fx = rec.run.module.loss_fn.effect()
    assert fx["direction_terms"] == 3 * rec.served
    assert fx["hardness_weighted"] > 0


@pytest.mark.slow
def test_explicit_defaults_train_exactly_as_before(tmp_path, baseline) -> None:
    rec = record_fit(tmp_path, ["loss.directions=[query_to_doc]", "loss.partition_mode=joint",
                                "loss.hardness_mode=null", "loss.hardness_strength=0"])
    assert [s.loss for s in rec.steps] == [s.loss for s in baseline.steps]
    assert rec.run.module.loss_fn.effect() == {}


@pytest.mark.slow
def test_cached_infonce_with_directions_equals_infonce_with_directions(tmp_path) -> None:
    knobs = ["loss.directions=[query_to_doc,doc_to_query]", "loss.partition_mode=per_direction",
             "loss.hardness_mode=hard_negatives", "loss.hardness_strength=5",
             "+miner=dense_static", "miner.num_negatives=2", "module.dropout=false", QUIET]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = record_fit(tmp_path / "a", ["loss=infonce", *knobs])
    cached = record_fit(tmp_path / "b", ["loss=cached_infonce", "loss.chunk_size=5", *knobs])
    for x, y in zip(plain.steps, cached.steps):
        assert y.loss == pytest.approx(x.loss, rel=1e-4)
    assert cached.run.module.loss_fn.effect()["hardness_weighted"] == \
        plain.run.module.loss_fn.effect()["hardness_weighted"] > 0


# -- NBPO -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_nbpo_excuses_the_planted_false_negatives_during_training(tmp_path, monkeypatch,
                                                                   baseline) -> None:
    """Every query has an unlabeled twin document (its own text) among its mined negatives:
    inside training, NBPO's posterior that a candidate is a mislabeled positive is higher for
    the twins than for the other unlabeled candidates."""
    seen: list[tuple[float, float]] = []
    original = NBPOLoss.per_query

    def spy(self, ctx):
        post = self.posterior(ctx)
        planted = torch.tensor([[d == false_negative(q) for d in ctx.doc_ids]
                                for q in ctx.qids])
        planted = torch.cat([planted, torch.zeros(post.shape[0], post.shape[1] - planted.shape[1],
                                                  dtype=torch.bool)], dim=1)
        known = ~torch.isnan(post)
        seen.append((float(post[planted & known].mean()), float(post[~planted & known].mean())))
        return original(self, ctx)

    monkeypatch.setattr(NBPOLoss, "per_query", spy)
    rec = record_fit(tmp_path, ["loss=nbpo", "+miner=dense_static", "miner.range_max=5", QUIET],
                     data=with_false_negatives())
    assert len(seen) == len(rec.steps) > 0
    for s in rec.steps:
        assert any(false_negative(q) in row for q, row in zip(s.qids, negatives(s)))
    assert all(fn > other for fn, other in seen), seen
    fx = rec.run.module.loss_fn.effect()
    assert 0 < fx["expected_false_negatives"] < fx["unlabeled_candidates"]
    assert rec.steps[0].logs["nbpo_expected_false_negatives"] > 0
    assert all(math.isfinite(s.loss) for s in rec.steps)


# -- taxonomy negatives ---------------------------------------------------------------------
def grouped_data():
    """Planted data whose titles are ``g{topic // 4}.t{topic}.f{i}``: siblings are the same
    topic, cousins the other topics of the same group of four."""
    data = planted_data()
    for did, doc in data.corpus.items():
        t = topic_of(did)
        doc["title"] = f"g{t // 4}.t{t}.f{did.split('_d')[1]}"
    return data


@pytest.mark.slow
def test_taxonomy_trains_on_siblings_then_cousins_then_random(tmp_path) -> None:
    (tmp_path / "base").mkdir()
    base = record_fit(tmp_path / "base", [], data=grouped_data())
    rec = record_fit(tmp_path, ["+miner=taxonomy", QUIET], data=grouped_data())
    quota = rec.run.miner.quota
    assert quota == {"siblings": 3, "cousins": 1, "random": 1}  # 0.5/0.3/0.2 of 5
    for s in rec.steps:
        assert s.num_negatives == 5
        for qid, row in zip(s.qids, negatives(s)):
            t = topic_of(qid)
            assert all(topic_of(d) == t for d in row[:3]), (qid, row)
            assert topic_of(row[3]) != t and topic_of(row[3]) // 4 == t // 4, (qid, row)
            assert not set(row) & rec.run.pairs.positives[qid]
    fx = rec.run.miner.effect()
    assert fx["negatives_siblings"] == 3 * rec.served
    assert fx["negatives_cousins"] == rec.served and fx["negatives_padded"] == 0
    assert rec.steps[0].idx == base.steps[0].idx
    assert rec.steps[0].loss != pytest.approx(base.steps[0].loss, abs=1e-4)


# -- the difficulty curriculum --------------------------------------------------------------
CURRICULUM = ["+miner=dense_static", "miner.range_max=20", "miner.sampling_strategy=top",
              "trainer.max_epochs=2", QUIET]


@pytest.mark.slow
def test_easy_to_hard_moves_the_window_from_the_last_ranks_to_the_first(tmp_path) -> None:
    rec = record_fit(tmp_path, [*CURRICULUM, "miner.schedule=easy_to_hard"], probe=keep_start())
    start = Ranker(rec.run, rec.steps[0].probe)
    steps = rec.steps[-1].global_step + 1
    assert steps == 8
    by_step: dict[int, list[float]] = {}
    for s in rec.steps:
        f = s.global_step / (steps - 1)
        lo = round((1 - f) * (20 - 5))  # 20 survivors, a window of 5 (top)
        for qid, row in zip(s.qids, negatives(s)):
            ranked = [d for d, _ in start.ranking(qid)]
            ranks = [ranked.index(d) for d in row]
            by_step.setdefault(s.global_step, []).extend(ranks)
            # the window, up to float ties at its edges
            assert min(ranks) >= lo - 2 and max(ranks) <= lo + 4 + 2, (s.global_step, ranks)
    means = [np.mean(by_step[t]) for t in sorted(by_step)]
    assert means[0] > 14 and means[-1] < 5
    assert all(a >= b - 0.5 for a, b in zip(means, means[1:]))  # harder step after step
    fx = rec.run.miner.effect()
    assert fx["schedule_start_first"] == 15 and fx["schedule_start_last"] == 0


@pytest.mark.slow
def test_constant_schedule_trains_on_identical_negatives(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = record_fit(tmp_path / "a", CURRICULUM)
    constant = record_fit(tmp_path / "b", [*CURRICULUM, "miner.schedule=constant",
                                           "miner.schedule_width=9"])
    assert [s.doc_ids for s in constant.steps] == [s.doc_ids for s in plain.steps]
    assert [s.loss for s in constant.steps] == [s.loss for s in plain.steps]
