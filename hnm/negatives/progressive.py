"""PEG-style progressive weighting: easy queries first, hard queries later in training."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from hnm.errors import check_choice, check_range
from hnm.state import PartState
from hnm.types import Phase, ScoreContext

Schedule = Literal["linear", "cosine", "step"]
SCHEDULES = ("linear", "cosine", "step")
Difficulty = Literal["margin", "rank"]
DIFFICULTIES = ("margin", "rank")


def schedule_value(progress: float, schedule: Schedule, switch_at: float = 0.5) -> float:
    """Share of training done ``p`` in [0, 1] -> hardness focus ``s(p)`` in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return p
    if schedule == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * p))
    return 0.0 if p < switch_at else 1.0


def percentile(x: Tensor) -> Tensor:
    """Rank of each value in [0, 1] (0 = smallest), ties share their mean rank."""
    n = x.numel()
    if n < 2:
        return torch.full_like(x, 0.5, dtype=torch.float32)
    less = (x[None, :] < x[:, None]).sum(1).float()
    equal = (x[None, :] == x[:, None]).sum(1).float()
    return (less + 0.5 * (equal - 1)) / (n - 1)


class ProgressiveWeighting(PartState):
    """Progressive per-query loss weights: emphasis moves from easy to hard samples.

    For each query the difficulty is measured on the current batch (raw scores, no gradient):

    * ``margin``: hardest usable negative score minus the positive's score;
    * ``rank``: number of usable negatives scored above the positive;

    (synthetic negatives in ``ctx.extra_logits`` count too) and turned into a within-batch
    percentile ``h_i`` in [0, 1] (0 = easiest). With training progress
    ``p = step / (max_steps - 1)`` and the schedule's ``s(p)`` in [0, 1] (``linear``: ``p``;
    ``cosine``: ``(1 - cos(pi p)) / 2``; ``step``: 0 before ``switch_at`` then 1), the focus is
    ``e = 2 s(p) - 1`` (-1 = easy first, +1 = hard first) and

        w_i = exp(strength * e * (2 h_i - 1)),   then  w <- w / mean(w)

    so at the first step the easiest query weighs ``exp(2 strength)`` times the hardest, at
    mid-training all weigh 1, and at the last step the order is reversed. The
    weights multiply ``ctx.weights`` (so they compose with ``dbpm``); their batch mean is 1, so the
    loss scale and learning rate keep their meaning.

    Progress is counted in optimizer steps (``ctx.step`` of ``ctx.max_steps``), so under
    gradient accumulation the micro-batches of one step share their focus.

    Telemetry: ``progressive_focus`` (``e``), ``progressive_w_max`` / ``progressive_w_min``.
    Effect: ``pairs_reweighted`` (query visits whose weight it moved off 1, over the run).

    Args:
        schedule: ``linear`` | ``cosine`` | ``step``.
        strength: log-ratio of the largest to the middle weight (> 0; 0 would weigh every
            query 1, the baseline, and is refused).
        difficulty: ``margin`` | ``rank``.
        switch_at: the ``step`` schedule's switch point (share of training).

    Reference: Wu et al., "Towards Robust Text Retrieval with Progressive Learning" (PEG), 2023,
    arXiv:2311.11691: progressively adjusts the weights of samples in the loss by the difficulty
    of their negatives, from easy samples early in training to hard samples later. Departures:
    the paper's exact weighting function is not reproduced; the exponential form, the
    batch-percentile difficulty, the schedules and the mean-1 normalisation are this
    implementation's choices (a curriculum in the sense of Bengio et al., 2009). PEG also trains
    with a very large batch (80k in-batch negatives) and five mined hard negatives per query.
    Recommended with ``+miner=…`` hard negatives, where difficulty varies most across queries.
    """

    phases = (Phase.IN_BATCH,)

    def __init__(self, schedule: Schedule = "linear", strength: float = 1.0,
                 difficulty: Difficulty = "margin", switch_at: float = 0.5) -> None:
        check_choice("negatives.progressive.schedule", schedule, SCHEDULES)
        check_choice("negatives.progressive.difficulty", difficulty, DIFFICULTIES)
        check_range("negatives.progressive.strength", strength, 0.0, low_open=True)
        check_range("negatives.progressive.switch_at", switch_at, 0.0, 1.0)
        self.schedule = schedule
        self.strength = float(strength)
        self.difficulty = difficulty
        self.switch_at = float(switch_at)
        self.reweighted = 0

    def effect(self) -> dict[str, float]:
        return {"pairs_reweighted": float(self.reweighted)}

    @torch.no_grad()
    def hardness(self, ctx: ScoreContext) -> Tensor:
        """(B,) difficulty of each query (larger = harder), before the percentile."""
        s = ctx.scores().detach().float()
        rows = torch.arange(ctx.batch_size, device=s.device)
        pos = s[rows, ctx.labels]
        neg = s.masked_fill(~ctx.negative_mask(), float("-inf"))
        if ctx.extra_logits:
            neg = torch.cat([neg, *[e.detach().float() for e in ctx.extra_logits]], dim=1)
        if self.difficulty == "rank":
            return (neg > pos[:, None]).sum(1).float()
        hardest = neg.max(1).values
        return torch.where(torch.isfinite(hardest), hardest - pos, torch.full_like(pos, -2.0))

    def focus(self, step: int, max_steps: int) -> float:
        """``e`` in [-1, 1]; progress ``step / (max_steps - 1)`` so the last step reaches 1."""
        progress = step / max(max_steps - 1, 1)
        return 2.0 * schedule_value(progress, self.schedule, self.switch_at) - 1.0

    def weights(self, ctx: ScoreContext) -> Tensor:
        h = percentile(self.hardness(ctx))
        w = torch.exp(self.strength * self.focus(ctx.step, ctx.max_steps) * (2 * h - 1))
        return w / w.mean()

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        w = self.weights(ctx).to(ctx.weights.device, ctx.weights.dtype)
        ctx.weights = ctx.weights * w
        self.reweighted += int(((w - 1).abs() > 1e-6).sum())
        ctx.logs["progressive_focus"] = self.focus(ctx.step, ctx.max_steps)
        ctx.logs["progressive_w_max"] = float(w.max())
        ctx.logs["progressive_w_min"] = float(w.min())
        return ctx
