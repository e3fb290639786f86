"""Negative-quality telemetry of one batch: how hard the negatives are, how many were masked."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hnm.types import ScoreContext


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


def time_split(timings: Mapping[str, float]) -> dict[str, float]:
    """Where the wall time of training went so far: training steps vs mining/clustering.

    Args:
        timings: cumulative seconds: ``train_step_s`` (forward, backward and optimizer step of
            every batch), ``refresh_s`` (re-clustering the sampler, re-mining the miner during
            training) and optionally ``mine_s`` (mining before training).

    Returns:
        The three times and ``refresh_frac``, the share of mining and clustering in their sum
        (0 when nothing was timed yet).
    """
    step = float(timings.get("train_step_s", 0.0))
    refresh = float(timings.get("refresh_s", 0.0))
    mine = float(timings.get("mine_s", 0.0))
    total = step + refresh + mine
    return {"train_step_s": step, "refresh_s": refresh, "mine_s": mine,
            "refresh_frac": (refresh + mine) / total if total > 0 else 0.0}
