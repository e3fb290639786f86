"""Effect tests of the losses through the real ``trainer.fit``: what reached each loss, and that
its value differs from plain InfoNCE where it should (or equals it, for GradCache)."""

from __future__ import annotations

import math

import pytest
import torch

from hnm.data.dataset import RetrievalData
from tests.effects.harness import planted_data, record_fit

# the same batches for every loss: the same seed, sampler and miner; no dropout, so that two
# ways of encoding (GradCache's chunks, one pass) see the same network
MINED = ["+miner=denoise", "miner.num_negatives=2", "module.dropout=false"]
USABLE = ("t0_q00", "t5_q03")


def teacherless_data() -> RetrievalData:
    """Planted data on which the denoising miner leaves most queries without a teacher score:
    every query but two has a twin document (its own text) that the guide ranks first and
    above the positive, so with a candidate window of one it is dropped as a likely false
    negative and the query gets a random document with an unknown (NaN) teacher score. The
    two usable queries' positive is their own text: nothing ranks above it. Most batches then
    have no negative with a teacher score."""
    data = planted_data()
    for qid in data.qrels["train"]:
        if qid in USABLE:
            (did,) = data.qrels["train"][qid]
            data.corpus[did] = {"title": "", "text": data.queries[qid]}
        else:
            data.corpus[f"{qid}_twin"] = {"title": "", "text": data.queries[qid]}
    return data


# no floor (min_keep_share=0): with a window of one candidate the floor would keep the twin
TEACHERLESS = ["+miner=denoise", "miner.range_max=1", "miner.min_keep_share=0",
               "miner.num_negatives=1", "trainer.max_epochs=2", "loss.allow_self_teacher=true"]
# the starting model as its own teacher (refused unless asked for): what reached the loss is
# the point here, not what it learns
SELF_TEACHER = {"margin_mse": ["loss.allow_self_teacher=true"],
                "kl": ["loss.allow_self_teacher=true"]}


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["margin_mse", "kl"])
def test_distillation_completes_when_batches_lack_teacher_scores(tmp_path, loss) -> None:
    """Before: the run died at its first batch without a usable teacher score."""
    rec = record_fit(tmp_path, [f"loss={loss}", *TEACHERLESS], data=teacherless_data())
    fn = rec.run.module.loss_fn
    n_batches = 2 * len(rec.run.dm.batch_sampler)
    assert len(rec.steps) == n_batches                           # the run completed
    empty = [s for s in rec.steps if s.logs[f"{loss}_pairs"] == 0]
    used = [s for s in rec.steps if s.logs[f"{loss}_pairs"] > 0]
    assert empty and used, "the planted data must give both kinds of batch"
    for s in used:
        assert set(s.qids) & set(USABLE)
    for s in empty:
        assert s.loss == 0.0 and not set(s.qids) & set(USABLE)
    assert fn.distilled.without_teacher == len(empty)
    assert rec.steps[-1].logs[f"{loss}_batches_without_teacher"] == len(empty)
    fx = fn.effect()
    assert fx["batches_distilled"] == len(used)
    assert fx["pairs_distilled"] == sum(s.logs[f"{loss}_pairs"] for s in rec.steps) > 0


@pytest.fixture(scope="module")
def by_loss(tmp_path_factory) -> dict[str, object]:
    """One recording per loss over the same mined batches."""
    out = {}
    for loss in ("infonce", "cached_infonce", "margin_mse", "kl", "triplet"):
        extra = ["loss.chunk_size=5"] if loss == "cached_infonce" else SELF_TEACHER.get(loss, [])
        out[loss] = record_fit(tmp_path_factory.mktemp(loss), [f"loss={loss}", *MINED, *extra])
    return out


def _first(rec):
    return rec.steps[0]


@pytest.mark.slow
def test_every_loss_trains_on_the_same_batches_and_reports_per_query(by_loss) -> None:
    ref = by_loss["infonce"]
    for name, rec in by_loss.items():
        assert [s.idx for s in rec.steps] == [s.idx for s in ref.steps], name
        assert [s.doc_ids for s in rec.steps] == [s.doc_ids for s in ref.steps], name
        for s in rec.steps:
            assert s.per_query is not None and s.per_query.shape == (s.batch_size,), name
            assert not s.per_query.requires_grad
            assert math.isfinite(s.loss)
        # unweighted per-query losses whose mean is the loss (all weights 1 here)
        if name in ("infonce", "cached_infonce", "triplet"):
            s = _first(rec)
            assert s.per_query.mean().item() == pytest.approx(s.loss, rel=1e-5)


@pytest.mark.slow
def test_cached_infonce_equals_infonce(by_loss) -> None:
    """GradCache only changes how the batch is encoded: every step has the same loss and
    per-query losses (later steps: the same gradients gave the same weights)."""
    for x, y in zip(by_loss["infonce"].steps, by_loss["cached_infonce"].steps):
        assert y.loss == pytest.approx(x.loss, rel=1e-4)
        torch.testing.assert_close(y.per_query, x.per_query, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_distillation_and_triplet_losses_differ_from_infonce(by_loss) -> None:
    base = _first(by_loss["infonce"])
    for name in ("margin_mse", "kl", "triplet"):
        s = _first(by_loss[name])
        assert s.teacher is not None or name == "triplet"
        assert s.loss != pytest.approx(base.loss, rel=1e-3), name
        assert not torch.allclose(s.per_query, base.per_query, rtol=1e-3), name
    for name in ("margin_mse", "kl"):
        fn = by_loss[name].run.module.loss_fn
        fx = fn.effect()
        assert fx["pairs_distilled"] > 0 and fx["batches_distilled"] == len(by_loss[name].steps)
    assert by_loss["triplet"].run.module.loss_fn.effect()["triplets_violating"] > 0


@pytest.mark.slow
def test_symmetric_infonce_masks_the_planted_duplicates_in_training(tmp_path) -> None:
    """On data with repeated queries and shared positives, the document->query term of
    ``loss.symmetric=true`` leaves duplicates out of its denominators during training."""
    from tests.effects.test_samplers_effect import duplicated_data

    rec = record_fit(tmp_path, ["loss.symmetric=true"], data=duplicated_data())
    fx = rec.run.module.loss_fn.effect()
    assert fx["symmetric_terms"] == sum(s.batch_size for s in rec.steps)
    assert fx["symmetric_masked"] > 0
    for s in rec.steps:
        assert s.per_query is not None and torch.isfinite(s.per_query).all()
