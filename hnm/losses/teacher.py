"""Teacher scores for distillation losses: from the batch (miner/sampler) or a frozen model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from hnm import counting
from hnm.encoders.clip import clip_for
from hnm.encoders.embed import eval_mode
from hnm.errors import ConfigError, check_choice
from hnm.types import ScoreContext, TrainingView

CANDIDATE_CHOICES = ("explicit", "all")
SOURCE_CHOICES = ("auto", "context", "model")

NO_TEACHER = (
    "loss={name} needs teacher scores, and the run's first batch has none (no loss.teacher, "
    "and no miner or sampler that returns scores with its negatives): either add explicit "
    "negatives "
    "that come with teacher scores (+sampler=tas_balanced, or a +miner=… that returns scores), "
    "or give a teacher model, e.g. loss.teacher='${{encoder}}' (a frozen copy of the starting "
    "encoder), loss.teacher={{_target_: hnm.encoders.hf_encoder, name: PATH}} (a bi-encoder) or "
    "loss.teacher=PATH_OR_NAME_OF_A_CROSS_ENCODER"
)


def explicit_negative_columns(ctx: ScoreContext) -> Tensor:
    """(B, N) bool: True at each query's own explicit negatives (columns ``B + i*k + j``)."""
    b, n, k = ctx.batch_size, ctx.d.shape[0], ctx.num_negatives
    out = torch.zeros(b, n, dtype=torch.bool, device=ctx.mask.device)
    if k > 0:
        rows = torch.arange(b, device=out.device)
        cols = b + rows[:, None] * k + torch.arange(k, device=out.device)[None, :]
        out[rows[:, None], cols.clamp(max=n - 1)] = cols < n
    return out


def teacher_columns(ctx: ScoreContext, candidates: str) -> Tensor:
    """(B, N) bool: the (query, candidate) pairs a teacher model should score.

    ``explicit``: each query's positive (its label column) and its own explicit negatives;
    ``all``: every candidate that is a real document (non-empty text).
    """
    check_choice("loss.candidates", candidates, CANDIDATE_CHOICES)
    rows = torch.arange(ctx.batch_size, device=ctx.mask.device)
    if candidates == "all":
        real = torch.tensor([t != "" for t in ctx.doc_texts], dtype=torch.bool,
                            device=ctx.mask.device)
        want = real[None, :].expand(ctx.batch_size, -1).clone()
    else:
        want = explicit_negative_columns(ctx)
    want[rows, ctx.labels] = True
    return want


class TeacherScorer:
    """A frozen teacher that scores (query, document) text pairs.

    Args:
        model: a ``SentenceTransformer`` (a bi-encoder: cosine/dot of its embeddings), a
            ``CrossEncoder`` (its raw logits), or a string: the path or hub name of a
            cross-encoder, loaded with ``sentence_transformers.CrossEncoder``.
        batch_size: texts (or pairs) per teacher forward pass.

    The model is put in eval mode with gradients off, and moved to the batch's device on
    first use. It holds no state of the run: it is rebuilt from the configuration.
    """

    persistent = False  # never part of a checkpoint (hnm.state)

    def __init__(self, model: Any, batch_size: int = 64) -> None:
        if isinstance(model, str):
            from hnm.encoders.model_files import load_cross_encoder

            model = load_cross_encoder(model, "loss.teacher")
        self.model = model
        self.batch_size = int(batch_size)
        self.is_cross = hasattr(model, "predict")
        if not self.is_cross and not hasattr(model, "encode"):
            raise ConfigError(f"loss.teacher: expected a SentenceTransformer, a CrossEncoder or "
                              f"a cross-encoder path, got {type(model).__name__}")
        if isinstance(model, torch.nn.Module):
            model.eval()
            model.requires_grad_(False)
        self._device: torch.device | None = None
        self._fn: Any = None
        self._view: TrainingView | None = None

    def bind(self, view: TrainingView) -> None:
        """Embed with the teacher through the run's embedding cache, which the view holds."""
        self._view = view
        self._fn = None

    def _to(self, device: torch.device) -> None:
        if self._device != device and isinstance(self.model, torch.nn.Module):
            self.model.to(device)
        self._device = device

    @torch.no_grad()
    def __call__(self, queries: Sequence[str], doc_texts: Sequence[str], want: Tensor
                 ) -> Tensor:
        """(B, N) float32 teacher scores where ``want`` is True, NaN elsewhere."""
        self._to(want.device)
        out = torch.full(want.shape, float("nan"), dtype=torch.float32, device=want.device)
        rows, cols = want.nonzero(as_tuple=True)
        if len(rows) == 0:
            return out
        if self.is_cross:
            pairs = [(queries[i], doc_texts[j]) for i, j in zip(rows.tolist(), cols.tolist())]
            counting.add(len(pairs))
            scores = self.model.predict(clip_for(self.model, pairs), batch_size=self.batch_size,
                                        convert_to_tensor=True,
                                        activation_fn=torch.nn.Identity(),
                                        show_progress_bar=False)
            out[rows, cols] = torch.as_tensor(scores, dtype=torch.float32,
                                              device=out.device).reshape(-1)
            return out
        uniq = {t: u for u, t in enumerate(dict.fromkeys(doc_texts[j] for j in cols.tolist()))}
        q = self._embed(list(queries))
        d = self._embed(list(uniq))
        col_of = torch.tensor([uniq.get(t, 0) for t in doc_texts], device=out.device)
        full = (q @ d.T)[:, col_of]
        out[rows, cols] = full[rows, cols]
        return out

    def _embed(self, texts: list[str]) -> Tensor:
        """The teacher's embeddings of ``texts`` (float32, on the batch's device), through the
        run's embedding cache (its weights are frozen; the view of :meth:`bind` holds it). A model
        that ends in a ``Normalize`` module shares the cache entries of every other normalised pass of the same weights (the
        zero-shot evaluation's, when the teacher is the starting encoder)."""
        if self._fn is None:
            from sentence_transformers import models

            from hnm.cache import frozen, frozen_embed_fn

            model, view = self.model, self._view
            if any(isinstance(m, models.Normalize) for m in model.children()):
                self._fn = (frozen_embed_fn(model, self.batch_size, progress=False)
                            if view is None else view.frozen_embedder(model, self.batch_size))
            else:
                def raw(batch: Sequence[str]) -> Any:
                    with eval_mode(model), torch.inference_mode():
                        return model.encode(clip_for(model, batch), batch_size=self.batch_size,
                                            convert_to_numpy=True, show_progress_bar=False)

                self._fn = (frozen(model, raw, fn="encode", normalize=False) if view is None
                            else view.through_cache(model, raw, fn="encode", normalize=False))
        emb = torch.from_numpy(self._fn(texts).astype("float32", copy=False))
        return emb.to(self._device or emb.device, torch.float32)


def check_source(source: str, scorer: TeacherScorer | None, name: str) -> None:
    """At construction: a valid ``teacher_source``, and a model when it is ``model``."""
    check_choice("loss.teacher_source", source, SOURCE_CHOICES)
    if source == "model" and scorer is None:
        raise ConfigError(f"loss={name} has teacher_source=model but no loss.teacher; "
                          + NO_TEACHER.format(name=name))


def teacher_scores(ctx: ScoreContext, scorer: TeacherScorer | None, candidates: str,
                   source: Literal["auto", "context", "model"], name: str,
                   required: bool = True) -> Tensor | None:
    """(B, N) teacher scores (NaN where unknown) for a distillation loss.

    ``source``: ``auto`` uses the teacher model when one is configured, else ``ctx.teacher``
    (scores that came with the explicit negatives); ``context``/``model`` force one of them.
    A batch without ``ctx.teacher`` (and no model) raises :class:`ConfigError` when
    ``required`` (the first batch: the run has no source of teacher scores at all), else
    returns None.
    """
    check_choice("loss.teacher_source", source, SOURCE_CHOICES)
    use_model = scorer is not None and source in ("auto", "model")
    if use_model:
        assert scorer is not None
        return scorer(ctx.queries, ctx.doc_texts, teacher_columns(ctx, candidates))
    if source == "model":
        raise ConfigError(f"loss={name} has teacher_source=model but no loss.teacher; "
                          + NO_TEACHER.format(name=name))
    if ctx.teacher is None:
        if required:
            raise ConfigError(NO_TEACHER.format(name=name))
        return None
    return ctx.teacher.to(torch.float32)


class Distilled:
    """What a distillation loss did so far in a run (``effect()``) and per batch (``ctx.logs``).

    ``pairs`` counts the (query, candidate) pairs whose teacher score entered the loss,
    ``batches`` the batches with at least one; ``without_teacher`` the batches that had none
    (no teacher score, or every scored candidate masked), which contribute no gradient from
    the distillation term. ``teacher_seen`` turns true at the first batch with teacher scores:
    until then a batch without any is the run's error, after it a gap to be counted.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.pairs = 0
        self.batches = 0
        self.without_teacher = 0
        self.teacher_seen = False

    def count(self, ctx: ScoreContext, pairs: int) -> None:
        if pairs > 0:
            self.pairs += pairs
            self.batches += 1
        else:
            self.without_teacher += 1
        ctx.logs[f"{self.name}_pairs"] = float(pairs)
        ctx.logs[f"{self.name}_batches_without_teacher"] = float(self.without_teacher)

    def effect(self) -> dict[str, float]:
        """Change counts only (all zero: the loss distilled nothing); the batches without
        teacher scores are telemetry (``ctx.logs``, :attr:`without_teacher`)."""
        return {"pairs_distilled": float(self.pairs), "batches_distilled": float(self.batches)}


def plus_infonce(loss: Tensor, per_query: Tensor, ctx: ScoreContext, infonce: Any,
                 weight: float) -> tuple[Tensor, Tensor]:
    """A distillation loss plus ``weight`` x InfoNCE (TAS-B's in-batch term), as the pair
    ``(scalar, per-query values detached)`` that :class:`~hnm.types.ReportsPerQuery` returns."""
    if weight > 0:
        extra, extra_per_query = infonce.loss_and_per_query(ctx)
        loss = loss + weight * extra
        per_query = per_query + weight * extra_per_query
    return loss, per_query.detach()
