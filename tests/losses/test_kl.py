"""KL distillation: zero when the student equals the teacher, brute force otherwise."""

from __future__ import annotations

import math

import pytest
import torch

from hnm.encoders import tiny_encoder
from hnm.errors import ConfigError
from hnm.losses.kl import KLDistillationLoss
from tests.losses._ctx import make_ctx, per_pair_teacher


@pytest.fixture(scope="module")
def teacher_model():
    return tiny_encoder(seed=1)  # the loss freezes it: not the shared tiny_model fixture


def test_zero_when_student_equals_teacher() -> None:
    ctx = make_ctx()
    ctx.teacher = ctx.scores().detach().clone()
    assert KLDistillationLoss(temperature=0.1, teacher_temperature=0.1)(ctx).item() == \
        pytest.approx(0.0, abs=1e-6)
    ctx.teacher = 2 * ctx.teacher  # a different distribution: strictly positive
    assert KLDistillationLoss(temperature=0.1, teacher_temperature=0.1)(ctx).item() > 1e-3


def _brute(ctx, t_s: float, t_t: float) -> float:
    total, rows = 0.0, 0
    for i in range(ctx.batch_size):
        cols = [j for j in range(ctx.d.shape[0]) if not math.isnan(float(ctx.teacher[i, j]))
                and (j == int(ctx.labels[i]) or not ctx.mask[i, j])]
        if len(cols) < 2:
            continue
        s = [float(ctx.q[i] @ ctx.d[j]) / t_s for j in cols]
        t = [float(ctx.teacher[i, j]) / t_t for j in cols]
        zs, zt = math.log(sum(map(math.exp, s))), math.log(sum(map(math.exp, t)))
        total += sum(math.exp(b - zt) * ((b - zt) - (a - zs)) for a, b in zip(s, t))
        rows += 1
    return total / rows


def test_matches_brute_force_over_known_candidates() -> None:
    ctx = make_ctx(b=4, k=3)
    ctx.teacher = per_pair_teacher(ctx)
    ctx.mask[2, 4 + 2 * 3] = True
    loss = KLDistillationLoss(temperature=0.2, teacher_temperature=0.5)(ctx)
    assert loss.item() == pytest.approx(_brute(ctx, 0.2, 0.5), rel=1e-5)


def test_teacher_model_scores_all_candidates(teacher_model) -> None:
    ctx = make_ctx(b=3, k=1)
    loss = KLDistillationLoss(teacher=teacher_model)
    value = loss(ctx)
    assert torch.isfinite(value) and value.item() > 0


def test_needs_teacher() -> None:
    with pytest.raises(ConfigError, match="teacher"):
        KLDistillationLoss()(make_ctx())
