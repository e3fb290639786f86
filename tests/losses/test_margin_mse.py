"""Margin-MSE against a brute-force loop over (query, positive, negative) triples."""

from __future__ import annotations

import pytest
import torch

from hnm.encoders import tiny_encoder
from hnm.errors import ConfigError
from hnm.losses.margin_mse import MarginMSELoss
from hnm.losses.teacher import explicit_negative_columns
from tests.losses._ctx import make_ctx, per_pair_teacher


@pytest.fixture(scope="module")
def teacher_model():
    return tiny_encoder(seed=1)  # the loss freezes it: not the shared tiny_model fixture


def _brute(ctx, teacher, scale=1.0, teacher_scale=1.0) -> float:
    total, count = 0.0, 0
    b, k = ctx.batch_size, ctx.num_negatives
    for i in range(b):
        s_pos = float(ctx.q[i] @ ctx.d[i])
        for j in range(k):
            col = b + i * k + j
            if ctx.mask[i, col]:
                continue
            s_neg = float(ctx.q[i] @ ctx.d[col])
            m_s = (s_pos - s_neg) * scale
            m_t = (float(teacher[i, i]) - float(teacher[i, col])) * teacher_scale
            total += float(ctx.weights[i]) * (m_s - m_t) ** 2
            count += 1
    return total / count


def test_matches_brute_force_with_mask_and_weights() -> None:
    ctx = make_ctx(b=4, k=3)
    ctx.teacher = per_pair_teacher(ctx)
    ctx.mask[1, 4 + 1 * 3 + 2] = True  # a masked explicit negative is not a triple
    ctx.weights = torch.tensor([1.0, 2.0, 0.5, 1.0])
    loss = MarginMSELoss(scale=3.0, teacher_scale=0.5)(ctx)
    assert loss.item() == pytest.approx(_brute(ctx, ctx.teacher, 3.0, 0.5), rel=1e-5)


def test_zero_when_student_margins_equal_teacher_margins() -> None:
    ctx = make_ctx()
    ctx.teacher = torch.where(torch.isnan(per_pair_teacher(ctx)), float("nan"), ctx.scores())
    assert MarginMSELoss()(ctx).item() == pytest.approx(0.0, abs=1e-10)


def test_teacher_model_scores_explicit_pairs(teacher_model) -> None:
    ctx = make_ctx(b=3, k=2)
    loss = MarginMSELoss(teacher=teacher_model)
    assert loss.scorer is not None
    t = loss.scorer(ctx.queries, ctx.doc_texts, torch.ones(3, 9, dtype=torch.bool))
    ctx.teacher = torch.where(explicit_negative_columns(ctx) | torch.eye(3, 9).bool(), t,
                              torch.full_like(t, float("nan")))
    from_model = loss(ctx).item()
    assert from_model == pytest.approx(_brute(ctx, t), rel=1e-4)
    assert not any(p.requires_grad for p in teacher_model.parameters())


def test_explicit_columns_layout() -> None:
    ctx = make_ctx(b=2, k=2)
    cols = explicit_negative_columns(ctx)
    assert cols.nonzero().tolist() == [[0, 2], [0, 3], [1, 4], [1, 5]]


def test_no_teacher_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="sampler=tas_balanced"):
        MarginMSELoss()(make_ctx())


def test_no_explicit_negatives_is_a_counted_zero() -> None:
    """Teacher scores for the positives only: no triple, a zero loss (not an error: another
    batch of the run may have some), counted."""
    ctx = make_ctx(b=3, k=0, grad=True)
    ctx.teacher = torch.full((3, 3), float("nan"))
    ctx.teacher[range(3), range(3)] = 1.0
    loss = MarginMSELoss()
    value = loss(ctx)
    assert value.item() == 0.0 and value.requires_grad
    assert ctx.logs["margin_mse_pairs"] == 0 and loss.distilled.without_teacher == 1
