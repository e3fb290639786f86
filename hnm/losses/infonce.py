"""InfoNCE over in-batch and explicit negatives (MultipleNegativesRankingLoss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError
from hnm.modules.context import ScoreContext


def masked_logits(ctx: ScoreContext, temperature: float) -> Tensor:
    """Logits ``(B, N + m)``: ``q @ d.T / t`` with masked candidates at -inf and MoCHi-style
    extra candidates appended. The label column of each query is never masked. With
    ``ctx.candidate_weights`` (CET), ``log w`` is added to every other candidate's logit, so
    its term in the softmax denominator is multiplied by ``w`` (``w = 0`` removes it)."""
    logits = ctx.scores() / temperature
    mask = ctx.mask.clone()
    rows = torch.arange(ctx.batch_size, device=mask.device)
    mask[rows, ctx.labels] = False
    if ctx.candidate_weights is not None:
        w = ctx.candidate_weights.to(logits.device, logits.dtype).clone()
        w[rows, ctx.labels] = 1.0
        mask |= w <= 0
        logits = logits + torch.log(w.clamp(min=torch.finfo(logits.dtype).tiny))
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
            (as in CLIP / GTE's bidirectional loss), weighted by ``symmetric_weight``: each
            positive is scored against the batch's queries; queries that duplicate its own
            (same id or text) or have it as a known positive (the forward term's
            ``ctx.mask``) are left out of its denominator.
        symmetric_weight: weight of the symmetric term.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), ``ctx.mask`` (B, N); returns a scalar
    (:meth:`loss_and_per_query` also the unweighted per-query losses). Scores are float32,
    computed outside autocast.

    Reference: van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding" (2018); Henderson et al., "Efficient Natural Language Response Suggestion for Smart
    Reply" (2017) for in-batch negatives; Karpukhin et al., DPR (2020); the symmetric term
    as in Radford et al., CLIP (2021) and Li et al., GTE (arXiv:2308.03281, 2023).
    Departure: the symmetric term's negatives are the batch's queries only (GTE also adds
    query-query and document-document terms).
    Recommended with any sampler; hard negatives from ``+miner=…`` enter as extra columns.
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = False,
                 symmetric_weight: float = 1.0) -> None:
        if temperature <= 0:
            raise ConfigError(f"loss.temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.symmetric_weight = symmetric_weight
        self._served = {"symmetric_terms": 0, "symmetric_masked": 0}

    def per_query(self, ctx: ScoreContext) -> Tensor:
        """Unweighted loss of every query, shape (B,)."""
        logits = masked_logits(ctx, self.temperature)
        loss = F.cross_entropy(logits.float(), ctx.labels, reduction="none")
        if self.symmetric:
            loss = loss + self.symmetric_weight * self.backward_per_query(ctx)
        return loss

    def backward_per_query(self, ctx: ScoreContext) -> Tensor:
        """(B,) loss of each positive against the batch's queries (the symmetric term), in
        float32 outside autocast; a query that duplicates the positive's own query, or has
        it as a known positive (``ctx.mask``), is no negative of it."""
        with torch.autocast(ctx.q.device.type, enabled=False):
            back = (ctx.d[ctx.labels].float() @ ctx.q.float().T) / self.temperature  # (B, B)
        masked = symmetric_mask(ctx)
        self._served["symmetric_terms"] += ctx.batch_size
        self._served["symmetric_masked"] += int(masked.sum())
        back = back.masked_fill(masked, torch.finfo(back.dtype).min)
        target = torch.arange(back.shape[0], device=back.device)
        return F.cross_entropy(back, target, reduction="none")

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """The ``ctx.weights``-weighted mean loss and the unweighted (B,) losses, detached."""
        per_query = self.per_query(ctx)
        return (per_query * ctx.weights.to(per_query.dtype)).mean(), per_query.detach()

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        """With ``symmetric``: the positives that got a document->query term, and the
        (positive, query) pairs it masked as duplicates or known positives; else nothing."""
        return {k: float(v) for k, v in self._served.items()} if self.symmetric else {}


def symmetric_mask(ctx: ScoreContext) -> Tensor:
    """(B, B) bool: True where query ``j`` must not be a negative of positive ``i`` (``i != j``):
    the same query (id or text), the same positive id, or positive ``i`` masked for query ``j``
    in the forward term (a known positive, or a strategy's mask)."""
    same = _same_ids(ctx.qids, ctx.mask.device) | _same_ids(ctx.pos_ids, ctx.mask.device)
    same |= _same_texts(ctx.queries, ctx.mask.device)
    same |= ctx.mask[:, ctx.labels].T  # [i, j] = mask[j, labels[i]]
    same.fill_diagonal_(False)
    return same


def _same_ids(ids: list[str], device: torch.device) -> Tensor:
    index = {v: i for i, v in enumerate(dict.fromkeys(ids))}
    codes = torch.tensor([index[v] for v in ids], device=device)
    return codes[:, None] == codes[None, :]


def _same_texts(texts: list[str], device: torch.device) -> Tensor:
    """Like :func:`_same_ids`, but an empty text (unknown) equals nothing."""
    same = _same_ids(texts, device)
    known = torch.tensor([t != "" for t in texts], dtype=torch.bool, device=device)
    return same & known[:, None] & known[None, :]
