"""Negative-quality telemetry of one batch: how hard the negatives are, how many were masked."""

from __future__ import annotations

import torch

from hnm.modules.context import ScoreContext


@torch.no_grad()
def batch_telemetry(ctx: ScoreContext) -> dict[str, float]:
    """Scalar statistics of the score matrix (raw cosine scores, before temperature).

    Returns mean positive score, mean and max usable-negative score, the mean margin
    (hardest negative minus positive), the mean in-batch rank of the positive (1 = first),
    the fraction of candidates masked (excluding each query's own label) and the mean loss
    weight.
    """
    s = ctx.scores().float()
    rows = torch.arange(ctx.batch_size, device=s.device)
    pos = s[rows, ctx.labels]
    usable = ctx.negative_mask()
    neg = s.masked_fill(~usable, float("nan"))
    hardest = torch.where(usable.any(1), s.masked_fill(~usable, float("-inf")).max(1).values,
                          torch.full_like(pos, float("nan")))
    if ctx.extra_logits:
        extra = torch.cat([e.float() for e in ctx.extra_logits], dim=1)
        hardest = torch.fmax(hardest, extra.max(1).values)
    rank = 1 + (s.masked_fill(~usable, float("-inf")) > pos[:, None]).sum(1).float()
    n_cand = max(s.shape[1] - 1, 1)
    masked = (ctx.mask.float().sum() - ctx.mask[rows, ctx.labels].float().sum()) / (
        ctx.batch_size * n_cand)
    return {
        "pos_score": pos.mean().item(),
        "neg_score_mean": torch.nanmean(neg).item() if usable.any() else float("nan"),
        "neg_score_max": torch.nanmean(hardest).item(),
        "margin_hardest": torch.nanmean(hardest - pos).item(),
        "pos_rank": rank.mean().item(),
        "masked_frac": masked.item(),
        "weight_mean": ctx.weights.float().mean().item(),
        "candidates": float(s.shape[1] + sum(e.shape[1] for e in ctx.extra_logits)),
    }
