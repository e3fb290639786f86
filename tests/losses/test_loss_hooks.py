"""What every loss owes the module: the explicit per-query hook, a zero with a graph for a batch
it cannot use, the symmetric term's masks and precision, and GradCache's refusal of DDP."""

from __future__ import annotations

import pytest
import torch

from hnm.errors import ConfigError
from hnm.losses import (
    CachedInfoNCELoss,
    InfoNCELoss,
    KLDistillationLoss,
    MarginMSELoss,
    NBPOLoss,
    TripletLoss,
)
from hnm.types import ReportsEffect, ReportsPerQuery
from tests.losses._ctx import make_ctx, per_pair_teacher

LOSSES = {
    "infonce": lambda: InfoNCELoss(0.1),
    "infonce_symmetric": lambda: InfoNCELoss(0.1, symmetric=True),
    "cached_infonce": lambda: CachedInfoNCELoss(0.1, chunk_size=2),
    "margin_mse": lambda: MarginMSELoss(infonce_weight=0.5),
    "kl": lambda: KLDistillationLoss(),
    "triplet": lambda: TripletLoss(num_negatives=2),
    "nbpo": lambda: NBPOLoss(0.1),
    "infonce_directions": lambda: InfoNCELoss(
        0.1, directions=["query_to_doc", "doc_to_query", "query_to_query", "doc_to_doc"],
        hardness_mode="all_negatives", hardness_strength=3.0),
}


def _ctx(seed: int = 0):
    ctx = make_ctx(b=4, k=2, seed=seed, grad=True)
    ctx.teacher = per_pair_teacher(ctx)
    return ctx


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_and_per_query_is_the_loss_and_its_unweighted_per_query_values(name) -> None:
    loss = LOSSES[name]()
    assert isinstance(loss, ReportsPerQuery) and isinstance(loss, ReportsEffect)
    ctx = _ctx()
    value, per_query = loss.loss_and_per_query(ctx)
    assert value.requires_grad and value.ndim == 0
    assert per_query.shape == (4,) and not per_query.requires_grad
    assert loss(_ctx()).item() == pytest.approx(value.item(), rel=1e-6)
    weighted = _ctx()
    weighted.weights = torch.tensor([2.0, 0.0, 1.0, 0.5])
    value_w, per_query_w = loss.loss_and_per_query(weighted)
    torch.testing.assert_close(per_query_w, per_query)       # unweighted
    assert value_w.item() != pytest.approx(value.item(), rel=1e-4)
    if name in ("infonce", "infonce_symmetric", "cached_infonce", "triplet", "nbpo",
                "infonce_directions"):
        assert value.item() == pytest.approx(per_query.mean().item(), rel=1e-5)


# -- batches a loss cannot use -------------------------------------------------------------------
def _unusable(ctx):
    """Every explicit negative masked: no triple, no KL comparison."""
    b = ctx.batch_size
    ctx.mask[:, b:] = True
    return ctx


@pytest.mark.parametrize("name", ["margin_mse", "kl"])
def test_a_batch_without_teacher_scored_negatives_is_a_zero_with_a_graph(name) -> None:
    loss = MarginMSELoss() if name == "margin_mse" else KLDistillationLoss()
    ctx = _unusable(_ctx())
    value, per_query = loss.loss_and_per_query(ctx)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()                                          # a graph, zero gradients
    assert ctx.q.grad is not None and float(ctx.q.grad.abs().sum()) == 0.0
    assert per_query.tolist() == [0.0] * 4
    assert ctx.logs[f"{name}_pairs"] == 0 and ctx.logs[f"{name}_batches_without_teacher"] == 1
    assert loss.effect() == {"pairs_distilled": 0.0, "batches_distilled": 0.0}
    good = _ctx()
    loss(good)
    fx = loss.effect()
    assert fx["batches_distilled"] == 1 and fx["pairs_distilled"] == good.logs[f"{name}_pairs"]
    assert good.logs[f"{name}_pairs"] == (8 if name == "margin_mse" else 12)


@pytest.mark.parametrize("name", ["margin_mse", "kl"])
def test_no_teacher_source_fails_at_the_first_batch_only(name) -> None:
    loss = MarginMSELoss() if name == "margin_mse" else KLDistillationLoss()
    bare = _ctx()
    bare.teacher = None
    with pytest.raises(ConfigError, match=f"loss={name} needs teacher scores.*first batch"):
        loss(bare)
    loss(_ctx())                                              # a source exists after all
    value = loss(bare)                                        # a later gap: a counted zero
    assert value.item() == 0.0 and value.requires_grad
    assert loss.distilled.without_teacher == 1


@pytest.mark.parametrize("cls", [MarginMSELoss, KLDistillationLoss])
def test_teacher_source_model_without_a_model_fails_at_construction(cls) -> None:
    with pytest.raises(ConfigError, match="teacher_source=model"):
        cls(teacher_source="model")
    with pytest.raises(ConfigError, match="teacher_source"):
        cls(teacher_source="bogus")


def test_triplet_without_usable_negatives_is_a_zero_with_a_graph() -> None:
    loss = TripletLoss()
    ctx = make_ctx(b=3, k=1, grad=True)
    ctx.mask[:] = True
    value, per_query = loss.loss_and_per_query(ctx)
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert ctx.logs["triplet_queries_without_negative"] == 3
    assert loss.effect() == {"triplets_violating": 0.0}
    lonely = make_ctx(b=1, k=0, grad=True)                   # one query, no candidate at all
    value = loss(lonely)
    assert value.item() == 0.0 and value.requires_grad
    loss(make_ctx(b=4, k=2))
    assert loss.effect()["triplets_violating"] > 0
