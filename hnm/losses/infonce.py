"""InfoNCE over in-batch and explicit negatives (MultipleNegativesRankingLoss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.modules.context import ScoreContext


def masked_logits(ctx: ScoreContext, temperature: float) -> Tensor:
    """Logits ``(B, N + m)``: ``q @ d.T / t`` with masked candidates at -inf and MoCHi-style
    extra candidates appended. The label column of each query is never masked."""
    logits = ctx.scores() / temperature
    mask = ctx.mask.clone()
    rows = torch.arange(ctx.batch_size, device=mask.device)
    mask[rows, ctx.labels] = False
    logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    if ctx.extra_logits:
        extra = torch.cat([e.to(logits.dtype) for e in ctx.extra_logits], dim=1) / temperature
        logits = torch.cat([logits, extra], dim=1)
    return logits


class InfoNCELoss:
    """InfoNCE / MultipleNegativesRankingLoss with in-batch and explicit negatives.

    For a batch of B queries with positives and k explicit negatives each, the candidates are the
    B positives and B*k negatives of the *whole* batch, so each query is scored against
    ``B*(1+k)`` documents (plus shared extras such as a queue) and the loss is the
    cross-entropy of its own positive::

        loss_i = -log  exp(s(q_i, d_i+) / t) / sum_j exp(s(q_i, d_j) / t)

    Masked candidates (false negatives, duplicates) are removed from the denominator.

    Args:
        temperature: softmax temperature ``t`` (0.05 equals sentence-transformers' scale 20).
        symmetric: also add the document->query direction over the batch's positives
            (as in CLIP / GTE's bidirectional loss), weighted by ``symmetric_weight``.
        symmetric_weight: weight of the symmetric term.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), ``ctx.mask`` (B, N); returns a scalar.

    Reference: van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding" (2018); Henderson et al., "Efficient Natural Language Response Suggestion for Smart
    Reply" (2017) for in-batch negatives; Karpukhin et al., DPR (2020).
    Recommended with any sampler; hard negatives from ``+miner=…`` enter as extra columns.
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False,
                 symmetric_weight: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.symmetric_weight = symmetric_weight

    def per_query(self, ctx: ScoreContext) -> Tensor:
        """Unweighted loss of every query, shape (B,)."""
        logits = masked_logits(ctx, self.temperature)
        loss = F.cross_entropy(logits.float(), ctx.labels, reduction="none")
        if self.symmetric:
            pos = ctx.d[ctx.labels]                         # (B, d)
            back = (pos @ ctx.q.T) / self.temperature       # (B, B): positive -> queries
            same = _same_ids(ctx.pos_ids, back.device)
            same.fill_diagonal_(False)
            back = back.masked_fill(same, torch.finfo(back.dtype).min)
            target = torch.arange(back.shape[0], device=back.device)
            loss = loss + self.symmetric_weight * F.cross_entropy(back.float(), target,
                                                                  reduction="none")
        return loss

    def __call__(self, ctx: ScoreContext) -> Tensor:
        per_query = self.per_query(ctx)
        ctx.state["per_query_loss"] = per_query.detach()
        return (per_query * ctx.weights.to(per_query.dtype)).mean()


def _same_ids(ids: list[str], device: torch.device) -> Tensor:
    index = {v: i for i, v in enumerate(dict.fromkeys(ids))}
    codes = torch.tensor([index[v] for v in ids], device=device)
    return codes[:, None] == codes[None, :]
