"""Soft-label distillation: KL from the teacher's to the student's distribution over candidates."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from hnm.errors import check_choice, check_range
from hnm.losses.infonce import InfoNCELoss
from hnm.losses.teacher import (
    CANDIDATE_CHOICES,
    Distilled,
    TeacherScorer,
    check_source,
    plus_infonce,
    teacher_scores,
)
from hnm.state import PartState
from hnm.types import Phase, ScoreContext, TrainingView


class KLDistillationLoss(PartState):
    """KL(teacher || student) of the softmax distributions over each query's candidates.

    For query ``i`` let ``C_i`` be its positive and its usable negatives (not masked by a
    strategy) whose teacher score is known. Both models' scores over ``C_i`` become
    distributions, ``p_t = softmax(t_i / teacher_temperature)`` and
    ``p_s = softmax(s_i / temperature)``, and::

        loss = sum_i w_i * KL(p_t,i || p_s,i) / #{i : |C_i| >= 2}

    A soft label says how much better each candidate is than the others, not only which one
    is the positive: hard negatives the teacher rates as nearly relevant are pushed down less,
    which also softens the damage of false negatives.

    Teacher scores come from (``teacher_source``) the batch (``ctx.teacher``: the scores a
    miner or ``+sampler=tas_balanced`` returned with the explicit negatives, so ``C_i`` is the
    positive plus the query's explicit negatives) or a ``teacher`` model (a frozen
    ``SentenceTransformer`` config node such as ``'${encoder}'``, or a cross-encoder
    path/name) that scores ``candidates``: ``all`` real candidates of the batch, in-batch
    negatives included (listwise over the whole batch), or ``explicit`` (positive and own
    explicit negatives).

    Args:
        teacher: optional teacher model; None uses the batch's teacher scores.
        teacher_source: ``auto`` (the model when given, else the batch), ``context``, ``model``.
        candidates: pairs a teacher model scores: ``all`` or ``explicit``.
        temperature: student softmax temperature (0.05 is InfoNCE's default).
        teacher_temperature: teacher softmax temperature: about 0.05 for cosine scores of a
            bi-encoder teacher (the default, as the batch's scores from a dense miner or
            ``tas_balanced``), about 1 for cross-encoder logits.
        infonce_weight: adds ``infonce_weight *`` InfoNCE (hard labels) on the same batch.
        teacher_batch_size: batch size of the teacher model's forward passes.
        allow_self_teacher: ``true`` runs the starting model as its own teacher with
            ``infonce_weight=0``, which is refused otherwise (why and when:
            :func:`hnm.knobs._check_self_teacher`); read by that check only.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), teacher scores (B, N) with NaN where unknown;
    returns a scalar (:meth:`loss_and_per_query` also the unweighted per-query losses). Extra
    synthetic candidates (``ctx.extra_logits``) have no teacher score and are left out. A
    batch where no query has two candidates with teacher scores contributes no gradient from
    the KL term and is counted; a run whose first batch has no teacher scores at all is a
    :class:`~hnm.errors.ConfigError` (the loss cannot tell earlier which miner it gets).

    Papers: Ren et al., "RocketQAv2: A Joint Training Method for Dense Passage Retrieval and
    Passage Re-ranking" (EMNLP 2021), dynamic listwise distillation (KL between the
    retriever's and re-ranker's distributions over a candidate list); the soft supervision of
    UniME-V2 (MLLM-as-a-judge soft scores) and LG-ANNA; Hinton et al., "Distilling the
    Knowledge in a Neural Network" (2015).

    Departures: RocketQAv2 trains the re-ranker jointly; here the teacher is frozen. No
    ``T^2`` gradient rescaling (Hinton's correction is meant for temperatures >= 1, while a
    retrieval student's temperature is far below 1).

    Recommended with: a cross-encoder ``loss.teacher`` and ``teacher_temperature=1``, or
    ``+sampler=tas_balanced`` / a scoring miner with several negatives per query
    (``num_negatives`` >= 2), optionally with ``infonce_weight=1``.
    """

    phases = (Phase.LOSS,)

    def __init__(self, teacher: Any = None,
                 teacher_source: Literal["auto", "context", "model"] = "auto",
                 candidates: Literal["explicit", "all"] = "all", temperature: float = 0.05,
                 teacher_temperature: float = 0.05, infonce_weight: float = 0.0,
                 teacher_batch_size: int = 64,
                 allow_self_teacher: bool = False) -> None:
        check_choice("loss.candidates", candidates, CANDIDATE_CHOICES)
        for name, value in (("temperature", temperature),
                            ("teacher_temperature", teacher_temperature)):
            check_range(f"loss.{name}", value, 0.0, low_open=True)
        check_range("loss.infonce_weight", infonce_weight, 0.0)
        check_range("loss.teacher_batch_size", teacher_batch_size, 1)
        self.scorer = TeacherScorer(teacher, teacher_batch_size) if teacher is not None else None
        self.teacher_source = teacher_source
        self.candidates = candidates
        self.teacher_temperature = float(teacher_temperature)
        self.infonce_weight = float(infonce_weight)
        self.infonce = InfoNCELoss(temperature)
        check_source(teacher_source, self.scorer, "kl")
        self.distilled = Distilled("kl")
        self._last_pairs = 0

    def bind(self, view: TrainingView) -> None:
        """The teacher model embeds through the run's embedding cache (the view holds it)."""
        if self.scorer is not None:
            self.scorer.bind(view)

    @property
    def temperature(self) -> float:
        return self.infonce.temperature

    def per_query(self, ctx: ScoreContext, t: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B,) KL of each query and (B,) bool: whether it has >= 2 candidates to compare.

        ``t``: (B, N) teacher scores (NaN where unknown); by default this batch's."""
        if t is None:
            t = teacher_scores(ctx, self.scorer, self.candidates, self.teacher_source,  # type: ignore[arg-type]
                               "kl")
        assert t is not None
        t = t.to(ctx.q.device)
        s = ctx.scores().float()
        rows = torch.arange(ctx.batch_size, device=s.device)
        keep = ctx.negative_mask()
        keep[rows, ctx.labels] = True
        keep &= torch.isfinite(t)
        ok = keep.sum(1) >= 2
        self._last_pairs = int((keep & ok[:, None]).sum())
        keep = keep | ~ok[:, None]  # rows without a comparison: any finite values, zeroed below
        neg_inf = torch.finfo(s.dtype).min
        log_ps = torch.log_softmax((s / self.temperature).masked_fill(~keep, neg_inf), dim=1)
        log_pt = torch.log_softmax((torch.nan_to_num(t) / self.teacher_temperature)
                                   .masked_fill(~keep, neg_inf), dim=1)
        terms = torch.where(keep, log_pt.exp() * (log_pt - log_ps), torch.zeros_like(s))
        return terms.sum(1) * ok, ok

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """The loss and each query's unweighted KL (plus the InfoNCE term when weighted in),
        detached.

        A batch where no query has two candidates with teacher scores gives a zero that keeps
        the graph, counted in ``ctx.logs`` (``kl_pairs``, ``kl_batches_without_teacher``); the
        first batch of a run without any teacher scores raises
        :class:`~hnm.errors.ConfigError`."""
        t = teacher_scores(ctx, self.scorer, self.candidates, self.teacher_source,  # type: ignore[arg-type]
                           "kl", required=not self.distilled.teacher_seen)
        if t is None:
            s = ctx.scores()
            loss, kl, pairs = 0.0 * s.sum(), torch.zeros(ctx.batch_size, device=s.device), 0
        else:
            self.distilled.teacher_seen = True
            kl, ok = self.per_query(ctx, t)
            pairs = self._last_pairs
            loss = (kl * ctx.weights.to(kl.dtype)).sum() / ok.sum().clamp(min=1)
        self.distilled.count(ctx, pairs)
        return plus_infonce(loss, kl, ctx, self.infonce, self.infonce_weight)

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        """(query, candidate) pairs whose teacher probability entered a KL term, and batches
        with any."""
        return self.distilled.effect()
