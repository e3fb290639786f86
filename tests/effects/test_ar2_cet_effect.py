"""Effect tests of AR2 and CET through the real ``trainer.fit`` on planted data: from epoch 0
on, what reached the optimizer is the strategy's objective (AR2's ranker and distillation
terms in turns; CET's weights on the explicit negatives)."""

from __future__ import annotations

import pytest
import torch

from hnm.strategy_report import effect_metrics
from tests.effects.harness import record_fit
from tests.effects.miner_probes import false_negative, negatives, with_false_negatives

QUIET = "miner.verbose=false"


def _digest(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


@pytest.mark.slow
def test_ar2_alternates_ranker_and_retriever_steps_from_epoch_0(tmp_path) -> None:
    def probe(run):
        m = run.module
        return {"ranker": _digest(m.ranker), "retriever": _digest(m.encoder),
                "ranker_train": any(x.training for x in m.ranker.modules())}

    (tmp_path / "base").mkdir()
    base = record_fit(tmp_path / "base", ["+miner=ance", "miner.refresh_every_n_steps=2",
                                          QUIET])
    rec = record_fit(tmp_path, ["+miner=ar2", "miner.ranker.model=fresh",
                                "miner.refresh_every_n_steps=2", "miner.ranker.max_length=32",
                                QUIET], probe=probe)
    run = rec.run
    assert run.module.ranker is run.miner.ranker  # a submodule: in checkpoints, on device
    steps = rec.steps
    assert [s.global_step for s in steps] == [0, 1, 2, 3] and steps[0].epoch == 0
    assert [s.logs["ar2_phase"] for s in steps] == [1.0, 0.0, 1.0, 0.0]
    for s in steps:
        assert s.num_negatives == 5 and s.logs["ar2_ranker_ce"] > 0
    # step 0 (ranker): the optimizer got the ranker's listwise cross-entropy, not InfoNCE
    assert steps[0].loss == pytest.approx(steps[0].logs["ar2_ranker_ce"], rel=1e-5)
    assert steps[0].idx == base.steps[0].idx and steps[0].loss != pytest.approx(
        base.steps[0].loss, abs=1e-3)
    # step 1 (retriever): its loss plus the KL towards the ranker
    assert steps[1].logs["ar2_kl"] > 0 and steps[1].loss > steps[1].per_query.mean() - 1e-4
    p = [s.probe for s in steps]
    assert p[1]["ranker"] != p[0]["ranker"] and p[1]["retriever"] == p[0]["retriever"]
    assert p[2]["retriever"] != p[1]["retriever"] and p[2]["ranker"] == p[1]["ranker"]
    assert p[0]["ranker_train"] and not p[1]["ranker_train"] and not steps[1].modes["frozen_any"]
    groups = run.trainer.optimizers[0].param_groups
    ranker_ids = {id(x) for x in run.module.ranker.parameters()}
    assert any(ranker_ids >= {id(x) for x in g["params"]} for g in groups)
    fx = effect_metrics(run.parts.reported())
    assert fx["strategy/miner/ranker_steps"] == 2 and fx["strategy/miner/retriever_steps"] == 2
    assert fx["strategy/miner/refreshes"] == 1
    assert fx["strategy/miner/pairs_ranked"] == sum(s.batch_size * 6 for s in steps)
    assert run.miner.save_models(tmp_path / "out") == ["ranker"]
    from hnm.eval.rerank import load_ranker

    scores = load_ranker(tmp_path / "out" / "ranker").predict([("sort order", "sort rank")])
    assert scores.shape == (1,)


@pytest.mark.slow
def test_cet_weights_planted_false_negatives_down_from_epoch_0(tmp_path) -> None:
    knobs = ["miner.range_max=10", QUIET]
    data = with_false_negatives()
    (tmp_path / "plain").mkdir()
    plain = record_fit(tmp_path / "plain", ["+miner=dense_static", *knobs], data=data)
    rec = record_fit(tmp_path, ["+miner=cet", *knobs], data=with_false_negatives())
    assert rec.steps[0].epoch == 0 and len(rec.steps) == len(plain.steps)
    fn_w, other_w = [], []
    for s, p in zip(rec.steps, plain.steps):
        assert negatives(s) == negatives(p)  # the same pool and draws: only the weights differ
        w = s.candidate_weights
        assert w is not None and torch.all(s.weights == 1)
        b, k = s.batch_size, s.num_negatives
        explicit = torch.zeros_like(w, dtype=torch.bool)
        for i, (qid, row) in enumerate(zip(s.qids, negatives(s))):
            for j, d in enumerate(row):
                explicit[i, b + i * k + j] = True
                (fn_w if d == false_negative(qid) else other_w).append(float(w[i, b + i * k + j]))
        assert torch.all(w[~explicit] == 1)  # positives and in-batch negatives untouched
        assert "cet_nll" in s.logs
    assert rec.steps[0].loss != pytest.approx(plain.steps[0].loss, abs=1e-4)
    assert len(fn_w) >= 8  # the planted false negatives do reach the batches...
    assert sum(fn_w) / len(fn_w) < 0.5 * sum(other_w) / len(other_w)  # ...and count little
    fx = effect_metrics(rec.run.parts.reported())
    assert fx["strategy/miner/negatives_weighted"] == len(fn_w) + len(other_w)
    assert fx["strategy/miner/weight_mass_removed"] > 0
