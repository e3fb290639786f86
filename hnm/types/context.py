"""The score context: everything an in-batch strategy or a loss may look at for one batch (the
contract of :class:`~hnm.types.NegativeStrategy` and :class:`~hnm.types.Loss`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class ScoreContext:
    """Embeddings, candidate ids, masks and weights of one (global) training batch.

    Candidates are laid out as ``[positives (B) ; explicit negatives (B*k) ; shared extras]``,
    so the dense score matrix ``q @ d.T`` has shape ``(B, B*(1+k) + M)`` and the label of query
    ``i`` is column ``labels[i]`` (``i`` on one device).

    Attributes:
        q: (B, d) query embeddings (with gradient).
        d: (N, d) candidate document embeddings (with gradient where they were encoded).
        doc_ids: N candidate ids (``""`` for synthetic or unknown candidates).
        doc_texts: N candidate texts (``""`` where not a real document).
        qids, pos_ids, queries: per-query ids and texts (length B).
        pair_idx: (B,) index of each pair in the training set (for per-pair state such as DBPM).
        labels: (B,) column of each query's positive.
        mask: (B, N) bool, True where a candidate must NOT be used as a negative of that query.
            The label column is never masked by strategies (losses ignore it there).
        weights: (B,) per-query loss weights (1.0 by default).
        extra_logits: per-query synthetic candidates as raw scores (B, m) appended after the
            dense matrix (e.g. MoCHi mixes); they are negatives only.
        teacher: optional (B, N) teacher scores aligned with ``d`` (NaN where unknown).
        candidate_weights: optional (B, N) weights in [0, 1] of each candidate as a negative of
            each query (CET: the estimated probability that it is truly irrelevant); a loss
            over a softmax multiplies the candidate's term in the denominator by it (adds
            ``log w`` to its logit, see :func:`hnm.losses.infonce.masked_logits`); the label
            column is never weighted. ``None``: every weight 1.
        num_negatives: ``k``, explicit negatives per query: those of query ``i`` are columns
            ``B + i*k`` to ``B + (i+1)*k - 1``.
        positives: qid -> set of all known positive doc ids.
        step, epoch, max_steps: training progress (optimizer steps done, epoch, the run's optimizer
            steps), for schedules.
        temperature: the loss temperature, so strategies can reason in logit space.
        logs: scalar telemetry the strategies want logged (name -> value).
    """

    q: Tensor
    d: Tensor
    doc_ids: list[str]
    doc_texts: list[str]
    qids: list[str]
    pos_ids: list[str]
    queries: list[str]
    pair_idx: Tensor
    labels: Tensor
    mask: Tensor
    weights: Tensor
    extra_logits: list[Tensor] = field(default_factory=list)
    teacher: Tensor | None = None
    candidate_weights: Tensor | None = None
    num_negatives: int = 0
    positives: dict[str, set[str]] = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    max_steps: int = 1
    temperature: float = 0.05
    logs: dict[str, float] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.q.shape[0]

    def scores(self) -> Tensor:
        """Raw cosine/dot scores ``q @ d.T`` of shape (B, N), in float32.

        Computed outside autocast: under bf16 mixed precision a bf16 matmul would round scores
        to ~3 significant digits (0.125 apart at logit scale 20), too coarse for a softmax
        over near-duplicate hard negatives."""
        with torch.autocast(self.q.device.type, enabled=False):
            return self.q.float() @ self.d.float().T

    def add_candidates(self, emb: Tensor, ids: list[str] | None = None,
                       texts: list[str] | None = None) -> None:
        """Append shared candidates (M, d) that act as negatives for every query."""
        m = emb.shape[0]
        if m == 0:
            return
        self.d = torch.cat([self.d, emb.to(self.d.dtype)], dim=0)
        self.doc_ids = self.doc_ids + (ids if ids is not None else [""] * m)
        self.doc_texts = self.doc_texts + (texts if texts is not None else [""] * m)
        pad = torch.zeros(self.mask.shape[0], m, dtype=torch.bool, device=self.mask.device)
        self.mask = torch.cat([self.mask, pad], dim=1)
        if self.teacher is not None:
            nan = torch.full((self.teacher.shape[0], m), float("nan"),
                             dtype=self.teacher.dtype, device=self.teacher.device)
            self.teacher = torch.cat([self.teacher, nan], dim=1)
        if self.candidate_weights is not None:
            one = torch.ones(self.candidate_weights.shape[0], m,
                             dtype=self.candidate_weights.dtype,
                             device=self.candidate_weights.device)
            self.candidate_weights = torch.cat([self.candidate_weights, one], dim=1)

    def negative_mask(self) -> Tensor:
        """(B, N) bool: True where a candidate is a usable negative of the query."""
        usable = ~self.mask
        usable[torch.arange(self.batch_size, device=usable.device), self.labels] = False
        return usable
