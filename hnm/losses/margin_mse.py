"""Margin-MSE: distil a teacher's score margin between a query's positive and its negatives."""

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


class MarginMSELoss(PartState):
    """Mean squared error between the student's and the teacher's margins ``s(q,d+) - s(q,d-)``.

    For every query ``i`` and every usable negative ``j`` whose teacher score is known::

        loss = mean_ij  w_i * ((s_i+ - s_ij) * scale - (t_i+ - t_ij) * teacher_scale)^2

    where ``s`` are the student's scores (``q @ d.T``, cosine for normalised encoders) and
    ``t`` the teacher's. Only the *difference* of scores is matched, so the student need not
    reproduce the teacher's score range, only how much better the positive is. Negatives
    masked by a strategy (false negatives, duplicates) are left out, as is a query whose
    positive has no teacher score.

    Teacher scores come from (``teacher_source``):

    - the batch: ``ctx.teacher``, the scores a miner or sampler returned with its explicit
      negatives (``+sampler=tas_balanced`` scores its negatives with the starting encoder or
      a guide model);
    - a ``teacher`` model: a frozen ``SentenceTransformer`` config node (``loss.teacher=
      '${encoder}'`` is a frozen copy of the starting encoder) or a cross-encoder path/name,
      which scores the pairs on the fly (``candidates``: each query's explicit negatives,
      or every real candidate in the batch, in-batch negatives included).

    Args:
        teacher: optional teacher model (see above); None uses the batch's teacher scores.
        teacher_source: ``auto`` (the model when given, else the batch), ``context`` or
            ``model``.
        candidates: pairs the teacher model scores: ``explicit`` or ``all``.
        scale: multiplies student scores (e.g. 20 to bring cosines to cross-encoder logits).
        teacher_scale: multiplies teacher scores.
        infonce_weight: adds ``infonce_weight *`` InfoNCE on the same batch (TAS-B trains with
            Margin-MSE plus an in-batch negatives term); 0 disables it.
        temperature: InfoNCE temperature when ``infonce_weight > 0``.
        teacher_batch_size: batch size of the teacher model's forward passes.
        allow_self_teacher: ``true`` runs the starting model as its own teacher with
            ``infonce_weight=0``, which is refused otherwise (why and when:
            :func:`hnm.knobs._check_self_teacher`); read by that check only.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), teacher scores (B, N) with NaN where unknown;
    returns a scalar (:meth:`loss_and_per_query` also the unweighted per-query losses).

    A batch with no triple (no teacher-scored negative, or all of them masked, e.g. by a
    denoising miner's padding or a false-negative filter) contributes no gradient from the
    Margin-MSE term and is counted; a run whose first batch has no teacher scores at all is
    a :class:`~hnm.errors.ConfigError` (the loss cannot tell earlier which miner it gets).

    Paper: Hofstätter, Althammer, Schröder, Sertkan, Hanbury, "Improving Efficient Neural
    Ranking Models with Cross-Architecture Knowledge Distillation" (arXiv:2010.02666, 2020);
    used by TAS-B (Hofstätter et al., SIGIR 2021).

    Departures: the paper distils a BERT-CAT ensemble into students trained on one (q, d+, d-)
    triple at a time; here every usable explicit negative of a query forms a triple (mean
    over triples), teacher margins may come from a bi-encoder, and an optional InfoNCE term
    sits beside it. With the starting encoder as teacher the loss starts at zero and acts as a
    regulariser; a stronger guide model gives a real teaching signal.

    Recommended with: ``+sampler=tas_balanced`` (balanced teacher margins), or a miner with
    teacher scores, or ``loss.teacher=`` a cross-encoder.
    """

    phases = (Phase.LOSS,)

    def __init__(self, teacher: Any = None,
                 teacher_source: Literal["auto", "context", "model"] = "auto",
                 candidates: Literal["explicit", "all"] = "explicit", scale: float = 1.0,
                 teacher_scale: float = 1.0, infonce_weight: float = 0.0,
                 temperature: float = 0.05, teacher_batch_size: int = 64,
                 allow_self_teacher: bool = False) -> None:
        check_choice("loss.candidates", candidates, CANDIDATE_CHOICES)
        check_range("loss.infonce_weight", infonce_weight, 0.0)
        check_range("loss.teacher_batch_size", teacher_batch_size, 1)
        self.scorer = TeacherScorer(teacher, teacher_batch_size) if teacher is not None else None
        self.teacher_source = teacher_source
        self.candidates = candidates
        self.scale = float(scale)
        self.teacher_scale = float(teacher_scale)
        self.infonce_weight = float(infonce_weight)
        self.infonce = InfoNCELoss(temperature)
        check_source(teacher_source, self.scorer, "margin_mse")
        self.distilled = Distilled("margin_mse")

    def bind(self, view: TrainingView) -> None:
        """The teacher model embeds through the run's embedding cache (the view holds it)."""
        if self.scorer is not None:
            self.scorer.bind(view)

    @property
    def temperature(self) -> float:
        return self.infonce.temperature

    def squared_errors(self, ctx: ScoreContext, t: Tensor | None = None
                       ) -> tuple[Tensor, Tensor]:
        """(B, N) squared margin errors and the (B, N) bool mask of triples that count.

        ``t``: (B, N) teacher scores (NaN where unknown); by default this batch's."""
        if t is None:
            t = teacher_scores(ctx, self.scorer, self.candidates, self.teacher_source,  # type: ignore[arg-type]
                               "margin_mse")
        assert t is not None
        t = t.to(ctx.q.device)
        s = ctx.scores().float()
        rows = torch.arange(ctx.batch_size, device=s.device)
        t_pos = t[rows, ctx.labels]
        valid = ctx.negative_mask() & torch.isfinite(t) & torch.isfinite(t_pos)[:, None]
        student = (s[rows, ctx.labels][:, None] - s) * self.scale
        teacher = (t_pos[:, None] - torch.nan_to_num(t)) * self.teacher_scale
        err = (student - teacher) ** 2
        return torch.where(valid, err, torch.zeros_like(err)), valid

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """The loss and each query's unweighted loss (mean over its triples, plus the
        InfoNCE term when weighted in), detached.

        A batch without a triple (no teacher scores, or every scored negative masked) gives
        a zero that keeps the graph, counted in ``ctx.logs`` (``margin_mse_pairs``,
        ``margin_mse_batches_without_teacher``); the first batch of a run without any teacher
        scores (no ``loss.teacher``, no scores from a miner or sampler) raises
        :class:`~hnm.errors.ConfigError`: nothing in the run could be distilled."""
        t = teacher_scores(ctx, self.scorer, self.candidates, self.teacher_source,  # type: ignore[arg-type]
                           "margin_mse", required=not self.distilled.teacher_seen)
        if t is None:
            s = ctx.scores()
            zero = torch.zeros(ctx.batch_size, device=s.device)
            loss, per_query, count = 0.0 * s.sum(), zero, 0
        else:
            self.distilled.teacher_seen = True
            err, valid = self.squared_errors(ctx, t)
            count = int(valid.sum())
            w = ctx.weights.to(err.dtype)
            loss = (err * w[:, None]).sum() / max(count, 1)  # 0 with its graph when no triple
            per_query = err.sum(1) / valid.sum(1).clamp(min=1)
        self.distilled.count(ctx, count)
        return plus_infonce(loss, per_query, ctx, self.infonce, self.infonce_weight)

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        """(query, negative) pairs whose teacher margin was distilled, and batches with any."""
        return self.distilled.effect()
