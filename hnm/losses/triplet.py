"""Margin triplet loss with online hard-negative selection among the batch's candidates."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from hnm.errors import ConfigError, check_choice, check_range
from hnm.state import PartState
from hnm.types import Phase, ScoreContext

MINING_CHOICES = ("hardest", "semi_hard")


class TripletLoss(PartState):
    """``max(0, margin - s(q, d+) + s(q, d-))`` for the hardest negatives of each query.

    Every usable negative of a query (in-batch positives of other queries, explicit negatives,
    shared extras such as a queue, and synthetic ``extra_logits``; masked candidates are
    skipped) is a candidate; the loss keeps the ``num_negatives`` hardest ones online:

    - ``hardest``: the highest-scoring negatives (batch-hard);
    - ``semi_hard``: the highest-scoring negatives that still score *below* the positive
      (FaceNet's semi-hard negatives); when a query has fewer than ``num_negatives`` of those,
      the rest are its negatives above the positive, lowest first (as TensorFlow Addons'
      ``triplet_semihard_loss``).

    Per query the hinge terms of its selected negatives are summed; the loss is their
    (``ctx.weights``-weighted) mean over queries. Scores are the raw ``q @ d.T`` (cosine for
    normalised encoders), so ``margin`` is in cosine units.

    Args:
        margin: required gap between the positive's and a negative's score (NGAME: 0.3).
        mining: ``hardest`` or ``semi_hard``.
        num_negatives: negatives kept per query (NGAME's code keeps several violators; 1 is
            batch-hard).

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), ``ctx.mask`` (B, N), ``ctx.extra_logits`` list
    of (B, m); returns a scalar (:meth:`loss_and_per_query` also the unweighted per-query
    losses). A query whose every negative is masked contributes a zero that keeps the graph.

    Papers: Dahiya et al., "NGAME: Negative Mining-aware Mini-batching for Extreme
    Classification" (WSDM 2023): triplet margin loss with online hard negative mining over the
    cluster-built batch; Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification" (2017) for batch-hard; Schroff et al., "FaceNet" (CVPR 2015) for
    semi-hard.

    Departures: NGAME's loss also has optional softmax weighting of the violators and a
    minimum margin; neither is implemented. Hermans et al. also take the hardest *positive*;
    here each query has exactly one positive (its label column).

    Recommended with: ``+sampler=ngame`` (its clusters make in-batch negatives hard) and
    ``+negatives=false_negative_mask``: the hardest negative is the likeliest false negative.
    """

    phases = (Phase.LOSS,)

    def __init__(self, margin: float = 0.3,
                 mining: Literal["hardest", "semi_hard"] = "hardest",
                 num_negatives: int = 1) -> None:
        check_choice("loss.mining", mining, MINING_CHOICES)
        check_range("loss.num_negatives", num_negatives, 1)
        check_range("loss.margin", margin, 0.0)
        if not math.isfinite(float(margin)) or float(margin) < 0:
            raise ConfigError(f"loss.margin={margin!r} is not valid; expected a finite number >= 0 "
                              "(the required gap between positive and negative scores, in cosine "
                              "units; a negative one lets most triplets through without a gradient)")
        self.margin = float(margin)
        self.mining = mining
        self.num_negatives = int(num_negatives)
        self._served = {"triplets_violating": 0}
        self._last = (0, 0, 0)

    def candidates(self, ctx: ScoreContext) -> tuple[Tensor, Tensor, Tensor]:
        """Positive scores (B,), negative scores (B, N + m) and their usable mask (B, N + m)."""
        s = ctx.scores().float()
        rows = torch.arange(ctx.batch_size, device=s.device)
        pos = s[rows, ctx.labels]
        usable = ctx.negative_mask()
        if ctx.extra_logits:
            extra = torch.cat([e.float() for e in ctx.extra_logits], dim=1)
            s = torch.cat([s, extra], dim=1)
            usable = torch.cat([usable, torch.ones_like(extra, dtype=torch.bool)], dim=1)
        return pos, s, usable

    def select(self, pos: Tensor, neg: Tensor, usable: Tensor) -> tuple[Tensor, Tensor]:
        """Column indices (B, n) of the selected negatives and whether each slot is real."""
        with torch.no_grad():
            key = neg.detach().clone()
            if self.mining == "semi_hard":
                below = key < pos.detach()[:, None]
                span = float(key[usable].abs().max()) + 1.0 if bool(usable.any()) else 1.0
                key = torch.where(below, key, -3.0 * span - key)  # all "above" rank after
            key = key.masked_fill(~usable, float("-inf"))
            n = min(self.num_negatives, key.shape[1])
            top, idx = key.topk(n, dim=1)
            return idx, torch.isfinite(top)

    def per_query(self, ctx: ScoreContext) -> Tensor:
        """(B,) unweighted sum of each query's hinge terms (0, with the graph, for a query
        without a usable negative)."""
        pos, neg, usable = self.candidates(ctx)
        if neg.shape[1] == 0:
            self._last = (0, 0, ctx.batch_size)
            return pos * 0.0
        idx, real = self.select(pos, neg, usable)
        hinge = torch.relu(self.margin - pos[:, None] + neg.gather(1, idx))
        self._last = (int((real & (hinge > 0)).sum()), int(real.sum()),
                      int((~real.any(1)).sum()))
        return (hinge * real).sum(1)

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """The ``ctx.weights``-weighted mean loss and the unweighted (B,) losses, detached;
        counts the triplets in ``ctx.logs`` (``triplet_violating``, ``triplet_selected``,
        ``triplet_queries_without_negative``)."""
        per_query = self.per_query(ctx)
        violating, selected, lonely = self._last
        self._served["triplets_violating"] += violating
        ctx.logs["triplet_violating"] = float(violating)
        ctx.logs["triplet_selected"] = float(selected)
        ctx.logs["triplet_queries_without_negative"] = float(lonely)
        return (per_query * ctx.weights.to(per_query.dtype)).mean(), per_query.detach()

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        """Selected triplets that violated the margin (the only ones with a gradient), so far."""
        return {k: float(v) for k, v in self._served.items()}
