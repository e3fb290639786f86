"""Triplet loss picks the hardest (or semi-hard) usable negative: brute-force check."""

from __future__ import annotations

import pytest
import torch

from hnm.losses.triplet import TripletLoss
from tests.losses._ctx import make_ctx


def _brute(ctx, margin: float, mining: str, n: int) -> float:
    total = 0.0
    s = ctx.scores()
    for i in range(ctx.batch_size):
        pos = float(s[i, ctx.labels[i]])
        negs = [float(s[i, j]) for j in range(s.shape[1]) if j != ctx.labels[i] and not ctx.mask[i, j]]
        for e in ctx.extra_logits:
            negs += [float(x) for x in e[i]]
        if mining == "hardest":
            chosen = sorted(negs, reverse=True)[:n]
        else:
            below = sorted([x for x in negs if x < pos], reverse=True)
            above = sorted([x for x in negs if x >= pos])
            chosen = (below + above)[:n]
        total += float(ctx.weights[i]) * sum(max(0.0, margin - pos + x) for x in chosen)
    return total / ctx.batch_size


@pytest.mark.parametrize("mining", ["hardest", "semi_hard"])
@pytest.mark.parametrize("n", [1, 3])
def test_matches_brute_force(mining: str, n: int) -> None:
    ctx = make_ctx(b=5, k=2, seed=3)
    ctx.mask[0, 7] = True
    ctx.mask[3, 1] = True
    ctx.extra_logits = [0.3 * torch.randn(5, 2, generator=torch.Generator().manual_seed(2))]
    ctx.weights = torch.tensor([1.0, 0.5, 1.0, 2.0, 1.0])
    loss = TripletLoss(margin=0.5, mining=mining, num_negatives=n)(ctx)
    assert loss.item() == pytest.approx(_brute(ctx, 0.5, mining, n), rel=1e-5)


def test_picks_planted_hardest_and_masks_it_when_asked() -> None:
    ctx = make_ctx(b=3, k=1, d=4)
    ctx.q = torch.eye(4)[:3]
    d = torch.zeros(6, 4)
    d[:3] = torch.eye(4)[:3] * 0.5          # positives score 0.5
    d[3] = torch.tensor([0.9, 0, 0, 0])      # query 0's explicit negative scores 0.9: hardest
    d[4] = torch.tensor([0, 0.1, 0, 0])
    d[5] = torch.tensor([0, 0, 0.2, 0])
    ctx.d = d
    loss = TripletLoss(margin=0.0, mining="hardest")
    assert loss.per_query(ctx)[0].item() == pytest.approx(0.4)
    ctx.mask[0, 3] = True                    # a false negative: never selected
    assert loss.per_query(ctx)[0].item() == pytest.approx(0.0)
    # semi-hard ignores negatives above the positive when one below exists
    ctx.mask[0, 3] = False
    d[1, 0] = 0.3
    semi = TripletLoss(margin=0.5, mining="semi_hard")
    assert semi.per_query(ctx)[0].item() == pytest.approx(0.5 - 0.5 + 0.3)


def test_gradient_flows_only_through_selected() -> None:
    ctx = make_ctx(b=3, k=1, grad=True)
    TripletLoss(margin=2.0)(ctx).backward()
    assert ctx.q.grad is not None and ctx.d.grad is not None
    used_rows = (ctx.d.grad.abs().sum(1) > 0).sum().item()
    assert used_rows <= 3 + 3  # each query touches its positive and one negative


@pytest.mark.parametrize("margin", [-0.1, float("nan"), float("inf")])
def test_a_margin_that_cannot_train_is_refused(margin: float) -> None:
    # margin <= -2 zeroes every hinge of a cosine model, a negative one most of them; NaN or
    # inf make the loss NaN/inf: all are configuration mistakes, named before training
    from hnm.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.margin"):
        TripletLoss(margin=margin)


def test_a_zero_margin_is_allowed() -> None:
    assert TripletLoss(margin=0.0).margin == 0.0
