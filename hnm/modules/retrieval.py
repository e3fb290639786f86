"""The bi-encoder LightningModule: encode -> negatives -> scores -> loss."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor

from hnm.data.dataset import TrainPairs
from hnm.encoders.embed import encode_with_grad
from hnm.modules.context import ScoreContext
from hnm.modules.gather import gather_context
from hnm.modules.telemetry import batch_telemetry, time_split
from hnm.types import (
    AfterLoss,
    EncodingLoss,
    HasFrozenModels,
    HasParamGroups,
    HasTemperature,
    JointObjective,
    Loss,
    Miner,
    NegativeStrategy,
    OptimizerStepHook,
    ReportsPerQuery,
    ShapesContext,
    StepEndHook,
)


class RetrievalModule(L.LightningModule):
    """Trains a bi-encoder with in-batch negatives, explicit negatives and negative strategies.

    One training step:

    1. encode the batch's queries and, in one pass, its positives and the miner's negatives;
    2. under DDP, gather every rank's embeddings (the local shard keeps its gradient);
    3. build the :class:`ScoreContext` (candidates ``[positives; negatives]``, labels, masks);
    4. a miner that shapes the context (:class:`~hnm.types.ShapesContext`, CET's negative
       weights) does so; then the ``negatives`` strategies apply in order (masks, extra
       candidates, weights);
    5. reduce with the loss; a miner with its own model (:class:`~hnm.types.JointObjective`,
       AR2's ranker) turns it into the step's objective; log the loss, learning rate and
       negative-quality telemetry.

    Args:
        encoder: the (shared) query and document encoder.
        loss: a :class:`~hnm.types.Loss`.
        pairs: the training pairs (texts, ids, every known positive per query).
        miner: optional explicit-negative miner.
        negatives: negative strategies applied in order.
        lr, weight_decay, warmup_ratio: AdamW with linear warmup then linear decay.
        mask_known_positives: mask candidates that are a known positive of the query (always
            true duplicates: the same document twice in a batch, or another relevant document).
        telemetry_every: log negative-quality telemetry every N steps (0 = never).
        doc_encoder: optional separate document encoder (frozen or trained).
        dropout: train the trainable encoders in train mode (dropout on, as sentence-transformers'
            trainer does); False trains them in eval mode. Frozen models (a frozen
            ``doc_encoder``, guides, teachers, momentum encoders: every part's
            :class:`~hnm.types.HasFrozenModels`) are in eval mode at every step either way.
            The modes are set at the start of every training step, whatever ran before it.

    ``observers`` (callables ``(ctx, loss, per_query)``) see what reached the loss at every
    step, after all strategies ran; the effect tests record through them.
    """

    def __init__(self, encoder: SentenceTransformer, loss: Loss, pairs: TrainPairs,
                 miner: Miner | None = None, negatives: Sequence[NegativeStrategy] = (),
                 lr: float = 2e-5, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 mask_known_positives: bool = True, telemetry_every: int = 10,
                 doc_encoder: SentenceTransformer | None = None, dropout: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.doc_encoder = doc_encoder
        self.loss_fn = loss
        self.pairs = pairs
        self.miner = miner
        self.strategies = list(negatives)
        for i, s in enumerate(self.strategies):  # register trainable/frozen state (queues, …)
            if isinstance(s, torch.nn.Module):
                self.add_module(f"strategy_{i}", s)
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.mask_known_positives = mask_known_positives
        self.telemetry_every = telemetry_every
        self.dropout = bool(dropout)
        self.observers: list[Any] = []
        # called with the trainer at the very end of every training batch, after the parts'
        # step-end hooks (the queue's enqueue, the momentum update): where checkpoints are cut
        self.after_batch: list[Any] = []
        self._optimizer_steps_seen = 0
        self.timings: dict[str, float] = {"train_step_s": 0.0, "refresh_s": 0.0}
        self.save_hyperparameters(ignore=["encoder", "loss", "pairs", "miner", "negatives",
                                          "doc_encoder"])

    # -- encoding ---------------------------------------------------------------------------
    def _encode(self, model: SentenceTransformer, texts: Sequence[str]) -> Tensor:
        if isinstance(self.loss_fn, EncodingLoss):
            return self.loss_fn.encode(model, texts)  # type: ignore[return-value]
        return encode_with_grad(model, texts)

    def encode_queries(self, texts: Sequence[str]) -> Tensor:
        return self._encode(self.encoder, texts)

    def encode_docs(self, texts: Sequence[str]) -> Tensor:
        model = self.doc_encoder if self.doc_encoder is not None else self.encoder
        if not _trainable(model):
            with torch.no_grad():
                return encode_with_grad(model, texts)
        return self._encode(model, texts)

    # -- train/eval modes -------------------------------------------------------------------
    def frozen_models(self) -> list[torch.nn.Module]:
        """Every model that must not train: a frozen ``doc_encoder`` and the parts' own."""
        out: list[Any] = []
        if self.doc_encoder is not None and not _trainable(self.doc_encoder):
            out.append(self.doc_encoder)
        for part in (self.loss_fn, self.miner, *self.strategies):
            if isinstance(part, HasFrozenModels):
                out.extend(part.frozen_models())
        return [m for m in out if isinstance(m, torch.nn.Module)]

    def apply_modes(self) -> None:
        """Trainable encoders in train mode (eval with ``dropout=False``), frozen ones in eval."""
        self.encoder.train(self.dropout)
        if self.doc_encoder is not None and _trainable(self.doc_encoder):
            self.doc_encoder.train(self.dropout)
        for model in self.frozen_models():
            model.eval()

    # -- the step ---------------------------------------------------------------------------
    def build_context(self, batch: dict[str, Any]) -> ScoreContext:
        idx: Tensor = batch["idx"]
        qids, pos_ids = batch["qids"], batch["pos_ids"]
        neg_ids: list[list[str]] = []
        teacher = None
        if self.miner is not None:
            neg_ids, teacher_np = self.miner.negatives(idx.tolist(), self.current_epoch,
                                                       self.global_step)
            if teacher_np is not None:
                teacher = torch.as_tensor(teacher_np, dtype=torch.float32, device=self.device)
        flat_neg = [d for row in neg_ids for d in row]
        data = self.pairs.data
        doc_texts = list(batch["positives"]) + [data.doc_text(d) for d in flat_neg]
        q = self.encode_queries(batch["queries"])
        d = self.encode_docs(doc_texts)
        ctx = ScoreContext(
            q=q, d=d, doc_ids=list(pos_ids) + flat_neg, doc_texts=doc_texts, qids=list(qids),
            pos_ids=list(pos_ids), queries=list(batch["queries"]),
            pair_idx=idx.to(self.device), labels=torch.arange(len(qids), device=self.device),
            mask=torch.zeros(len(qids), len(doc_texts), dtype=torch.bool, device=self.device),
            weights=torch.ones(len(qids), device=self.device),
            teacher=_teacher_matrix(teacher, len(qids), len(flat_neg), self.device),
            num_negatives=len(neg_ids[0]) if neg_ids else 0,
            positives=self.pairs.positives, step=self.global_step, epoch=self.current_epoch,
            max_steps=max(int(self.trainer.estimated_stepping_batches), 1)
            if self._trainer is not None else 1,
            temperature=float(self.loss_fn.temperature)
            if isinstance(self.loss_fn, HasTemperature) else 0.05,
        )
        ctx = gather_context(ctx, self)
        if self.mask_known_positives:
            ctx.mask |= known_positive_mask(ctx)
        return ctx

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._t_step = time.perf_counter()  # after the callbacks' refreshes of this batch

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.apply_modes()
        ctx = self.build_context(batch)
        if isinstance(self.miner, ShapesContext):
            ctx = self.miner.shape_context(ctx)
        for strategy in self.strategies:
            ctx = strategy(ctx)
        per_query = None
        if isinstance(self.loss_fn, ReportsPerQuery):
            loss, per_query = self.loss_fn.loss_and_per_query(ctx)
        else:
            loss = self.loss_fn(ctx)
        for strategy in self.strategies:
            if isinstance(strategy, AfterLoss):
                strategy.after_loss(ctx, per_query)
        if isinstance(self.miner, JointObjective):
            loss = self.miner.joint_loss(ctx, loss)  # type: ignore[assignment]
        for observe in self.observers:
            observe(ctx, loss, per_query)
        bs = ctx.batch_size
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        opt = self.optimizers()
        if opt is not None and not isinstance(opt, list):
            self.log("train/lr", opt.param_groups[0]["lr"], batch_size=bs)
        if self.telemetry_every and self.global_step % self.telemetry_every == 0:
            stats = batch_telemetry(ctx)
            stats.update(ctx.logs)
            logged = {f"neg/{k}": float(v) for k, v in stats.items()}
            logged.update({f"time/{k}": v for k, v in time_split(self.timings).items()})
            for logger in self.loggers:  # directly: every N steps, whatever log_every_n_steps
                logger.log_metrics(logged, step=self.global_step)
        self._last_ctx_logs = ctx.logs
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step != self._optimizer_steps_seen:  # the optimizer stepped (not on
            self._optimizer_steps_seen = self.global_step   # every micro-batch of accumulation)
            for s in self.strategies:
                if isinstance(s, OptimizerStepHook):
                    s.on_optimizer_step(self)
        for s in self.strategies:
            if isinstance(s, StepEndHook):
                s.on_step_end(self)
        if getattr(self, "_t_step", None) is not None:  # forward, backward, optimizer step
            self.timings["train_step_s"] += time.perf_counter() - self._t_step
            self._t_step = None
        for hook in self.after_batch:  # the batch is done: every part's state is final
            hook(self.trainer)

    def on_fit_start(self) -> None:
        self.apply_modes()  # before Lightning's check for modules left in eval mode

    def on_train_start(self) -> None:
        self._optimizer_steps_seen = self.global_step  # a resumed run's steps are not new

    # -- optimisation -----------------------------------------------------------------------
    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip as Lightning does (``trainer.gradient_clip_val`` and ``_algorithm``), also for a
        fused AdamW under ``bf16-mixed``, which Lightning's mixed-precision plugin refuses
        because a fused step could unscale a loss scaler's gradients inside itself; bf16
        autocast has no scaler, so the gradients clipped here are the true ones and the step
        that follows sees them clipped. Every other precision goes through Lightning."""
        plugin = self.trainer.precision_plugin
        if not gradient_clip_val or not unscaled_mixed_precision(plugin):
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
            return
        params = plugin.main_params(optimizer)
        if (gradient_clip_algorithm or "norm") == "value":
            torch.nn.utils.clip_grad_value_(params, float(gradient_clip_val))
        else:
            torch.nn.utils.clip_grad_norm_(params, float(gradient_clip_val))

    def configure_optimizers(self) -> Any:
        """AdamW over every trainable parameter: weight decay on matrices, none on vectors;
        a part's own parameters (:class:`~hnm.types.HasParamGroups`, AR2's ranker) in groups
        of their own, with their learning rate, under the same schedule."""
        own: list[dict[str, Any]] = []
        for part in (self.loss_fn, self.miner, *self.strategies):
            if isinstance(part, HasParamGroups):
                own.extend(dict(g) for g in part.param_groups())
        taken = {id(p) for g in own for p in g["params"]}
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in taken]
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        for g in own:
            ps = [p for p in g.pop("params") if p.requires_grad]
            wd = float(g.pop("weight_decay", self.weight_decay))
            groups.append({"params": [p for p in ps if p.ndim >= 2], "weight_decay": wd, **g})
            groups.append({"params": [p for p in ps if p.ndim < 2], "weight_decay": 0.0, **g})
        groups = [g for g in groups if g["params"]]
        every = [p for g in groups for p in g["params"]]
        fused, foreach = adamw_kernel(every, str(self.trainer.precision),
                                      float(self.trainer.gradient_clip_val or 0.0))
        opt = torch.optim.AdamW(groups, lr=self.lr, fused=fused, foreach=foreach)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(self.warmup_ratio * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def adamw_kernel(params: Sequence[Tensor], precision: str, clip_val: float
                 ) -> tuple[bool | None, bool | None]:
    """AdamW's ``(fused, foreach)`` for ``params``: the fused kernel wherever it can be clipped.

    The fused kernel (CPU and CUDA) is several times faster than the per-tensor loop
    (``scripts/bench_optimizer.py``). Under ``16-mixed`` the gradients are scaled by a loss
    scaler, which a fused step unscales inside itself, after the point where they must be
    clipped: Lightning refuses that pair, so with ``gradient_clip_val > 0`` the ``foreach``
    implementation is used there. ``bf16-mixed`` has no loss scaler (bf16 keeps float32's
    exponent range): its gradients are true gradients when they are clipped, and the module
    clips them itself (:meth:`RetrievalModule.configure_gradient_clipping`), so the fused step
    stays. Parameters the fused kernel does not take (other devices, non-float) get torch's
    default, ``(None, None)``.
    """
    if not params or not all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                             for p in params):
        return None, None
    if str(precision) in ("16-mixed", "16") and clip_val > 0:
        return None, True
    return True, None


def unscaled_mixed_precision(plugin: Any) -> bool:
    """Whether ``plugin`` is Lightning's autocast plugin without a loss scaler (``bf16-mixed``):
    its gradients are unscaled, so they can be clipped before a fused optimizer step."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    return isinstance(plugin, MixedPrecision) and plugin.scaler is None


def known_positive_mask(ctx: ScoreContext) -> Tensor:
    """(B, N) True where candidate j is a known positive of query i (other than its label)."""
    rows = []
    for qid, pos in zip(ctx.qids, ctx.pos_ids):
        known = ctx.positives.get(qid, set()) | {pos}
        rows.append([did in known for did in ctx.doc_ids])
    mask = torch.tensor(rows, dtype=torch.bool, device=ctx.mask.device)
    mask[torch.arange(ctx.batch_size, device=mask.device), ctx.labels] = False
    return mask


def _teacher_matrix(teacher: Tensor | None, b: int, n_neg: int, device: torch.device
                    ) -> Tensor | None:
    """Place per-pair teacher scores ``(B, 1+k)`` (positive first) on the (B, B*(1+k)) grid."""
    if teacher is None:
        return None
    k = teacher.shape[1] - 1
    out = torch.full((b, b + n_neg), float("nan"), device=device)
    rows = torch.arange(b, device=device)
    out[rows, rows] = teacher[:, 0]
    if k > 0:
        cols = b + rows[:, None] * k + torch.arange(k, device=device)[None, :]
        out[rows[:, None], cols] = teacher[:, 1:]
    return out


def _trainable(model: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in model.parameters())
