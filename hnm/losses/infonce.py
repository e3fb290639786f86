"""InfoNCE over in-batch and explicit negatives (MultipleNegativesRankingLoss)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError, check_range
from hnm.losses.directions import check_knobs, direction_rows, directions_per_query
from hnm.losses.masks import symmetric_mask
from hnm.state import PartState
from hnm.types import Phase, ScoreContext


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


class InfoNCELoss(PartState):
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
        directions: the interaction terms, as sentence-transformers'
            ``MultipleNegativesRankingLoss(directions=…)``: ``query_to_doc`` (required: the
            forward term above), ``doc_to_query`` (each positive against the batch's queries),
            ``query_to_query`` (each query against the other queries), ``doc_to_doc`` (each
            positive against every candidate document that is not its own query's). GTE's
            improved contrastive loss is all four with ``partition_mode=joint``.
        partition_mode: ``joint`` (one softmax over the selected directions' logits, the
            positive ``s(q_i, d_i+)`` in the numerator) or ``per_direction`` (one softmax per
            direction, their log-partitions averaged; only with ``query_to_doc`` and
            ``doc_to_query``, e.g. Jina's bidirectional loss).
        hardness_mode: hardness weighting of the forward term's negatives: ``null`` (off),
            ``in_batch_negatives`` (other pairs' positives and negatives and shared extras),
            ``hard_negatives`` (the query's own mined negatives and per-query synthetic extras),
            ``all_negatives`` (both). A selected negative's logit gets
            ``hardness_strength · stop_grad(s)`` added (``s`` the raw score, not divided by the
            temperature), so its weight in the denominator is multiplied by
            ``exp(hardness_strength · s)``.
        hardness_strength: the ``alpha`` of the hardness term (>= 0; sentence-transformers cites
            9 for in-batch negatives, Lan et al. 2025, and 5 for hard negatives, EmbeddingGemma).

    With the defaults (``directions=[query_to_doc]``, ``joint``, no hardness) the loss is the
    plain forward term, computed by the same code as before these knobs existed.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), ``ctx.mask`` (B, N); returns a scalar
    (:meth:`loss_and_per_query` also the unweighted per-query losses). Scores are float32,
    computed outside autocast.

    Reference: van den Oord et al., "Representation Learning with Contrastive Predictive
    Coding" (2018); Henderson et al., "Efficient Natural Language Response Suggestion for Smart
    Reply" (2017) for in-batch negatives; Karpukhin et al., DPR (2020); the symmetric term
    as in Radford et al., CLIP (2021) and Li et al., GTE (arXiv:2308.03281, 2023).
    Departure: the ``symmetric`` term's negatives are the batch's queries only (for GTE's
    query-query and document-document terms use ``directions``). ``directions`` and the
    hardness knobs follow sentence-transformers' ``MultipleNegativesRankingLoss`` (v5.2+),
    with the same values on the same scores when nothing is masked (a test compares them); they
    depart from it where hnm masks: duplicates and known positives (``ctx.mask``, and same
    query id/text or positive id) are no negatives in any direction, and ``doc_to_doc`` also
    leaves out the query's masked candidates. Shared extras (queue, pre-batch) are in-batch
    negatives for the hardness; per-query extras (MoCHi) are hard negatives. The hardness
    weighting is Robinson et al., "Contrastive Learning with Hard Negative Samples" (ICLR 2021)
    as sentence-transformers implements it: importance weights ``exp(alpha · s)`` on the
    negatives, without Robinson's normalisation of the weights to mean one (a constant shift of
    the loss per query) and without its debiasing for false negatives (``tau_plus``).
    Recommended with any sampler; hard negatives from ``+miner=…`` enter as extra columns.
    """

    phases = (Phase.LOSS,)

    def __init__(self, temperature: float = 0.05, symmetric: bool = False,
                 symmetric_weight: float = 1.0,
                 directions: Sequence[str] = ("query_to_doc",), partition_mode: str = "joint",
                 hardness_mode: str | None = None, hardness_strength: float = 0.0) -> None:
        check_range("loss.temperature", temperature, 0.0, low_open=True)
        check_range("loss.symmetric_weight", symmetric_weight, 0.0)
        self.directions = check_knobs(directions, partition_mode, hardness_mode,
                                      hardness_strength)
        if symmetric and "doc_to_query" in self.directions:
            raise ConfigError("loss.symmetric=true and loss.directions with doc_to_query both "
                              "add the document->query term; use one of them")
        self.temperature = temperature
        self.symmetric = symmetric
        self.symmetric_weight = symmetric_weight
        self.partition_mode = partition_mode
        self.hardness_mode = hardness_mode
        self.hardness_strength = float(hardness_strength)
        self._served = {"symmetric_terms": 0, "symmetric_masked": 0}
        self._hard = {"hardness_weighted": 0, "direction_terms": 0}

    @property
    def plain(self) -> bool:
        """The default forward term only (no extra direction, no hardness)."""
        return self.directions == ("query_to_doc",) and self.hardness_mode is None

    def per_query(self, ctx: ScoreContext) -> Tensor:
        """Unweighted loss of every query, shape (B,)."""
        logits = masked_logits(ctx, self.temperature)
        if self.plain:
            loss = F.cross_entropy(logits.float(), ctx.labels, reduction="none")
        else:
            rows, weighted = direction_rows(ctx, self.directions, self.temperature,
                                            self.hardness_mode, self.hardness_strength, logits)
            loss = directions_per_query(ctx, rows, self.partition_mode)
            self._hard["direction_terms"] += ctx.batch_size * (len(rows) - 1)
            self._hard["hardness_weighted"] += weighted
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
        (positive, query) pairs it masked as duplicates or known positives. With ``directions``
        beyond query_to_doc: ``direction_terms`` (extra rows, one per query and direction);
        with a hardness mode: ``hardness_weighted`` (unmasked forward-term negatives whose
        logit it raised; a score of exactly 0 raises nothing). Else nothing."""
        out = {k: float(v) for k, v in self._served.items()} if self.symmetric else {}
        if len(self.directions) > 1:
            out["direction_terms"] = float(self._hard["direction_terms"])
        if self.hardness_mode is not None:
            out["hardness_weighted"] = float(self._hard["hardness_weighted"])
        return out
