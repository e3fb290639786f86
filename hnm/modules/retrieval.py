"""The bi-encoder LightningModule: the step of training, phase by phase (``hnm.types.PHASES``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor

from hnm import counting
from hnm.cache.embed import EmbeddingCache
from hnm.data.dataset import TrainPairs
from hnm.encoders.embed import encode_with_grad
from hnm.errors import check_range
from hnm.modules.batch import known_positive_mask, teacher_matrix
from hnm.modules.gather import gather_context
from hnm.modules.pipeline import StepPipeline
from hnm.modules.refresh import Refresher, StepClock
from hnm.modules.telemetry import batch_telemetry
from hnm.modules.view import ModuleView
from hnm.types import (
    DeclaresModels,
    HasFrozenModels,
    HasParamGroups,
    HasTemperature,
    Loss,
    Miner,
    NegativeStrategy,
    Phase,
    ReportsPerQuery,
    ScoreContext,
    UsesTraining,
)


class RetrievalModule(L.LightningModule):
    """Trains a bi-encoder with in-batch negatives, explicit negatives and negative strategies.

    It runs the phases of :data:`hnm.types.PHASES` in their order, calling at each the parts
    that declared it (:class:`~hnm.modules.pipeline.StepPipeline`):

    - ``EPOCH_START`` (:meth:`start_epoch`): the sampler's epoch and refresh;
    - ``BEFORE_STEP`` (:meth:`on_train_batch_start`): a miner's re-mining;
    - in :meth:`training_step`: ``ATTACH_NEGATIVES``, ``ENCODE`` (queries and, in one pass,
      positives and negatives), ``GATHER`` (under DDP every rank's embeddings; the
      :class:`~hnm.types.ScoreContext` with known positives masked), ``SHAPE_CONTEXT``,
      ``IN_BATCH`` (the configured order), ``LOSS``, ``AFTER_LOSS``, ``OBJECTIVE`` and
      ``OBSERVE`` (loss, learning rate and negative-quality telemetry logged);
    - in :meth:`on_train_batch_end`: ``OPTIMIZER_STEP`` (once per optimizer step),
      ``STEP_END`` and ``CHECKPOINT``.

    Parts never see the module: hooks after the optimizer step and the parts that ask
    (:class:`~hnm.types.UsesTraining`) get its read-only :class:`~hnm.types.TrainingView`;
    models a part declares (:class:`~hnm.types.DeclaresModels`) are registered here.

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
        sampler: the run's batch sampler, for ``EPOCH_START`` (None: nobody refreshes it).
        hooks: the run's own parts after the strategies (the checkpoint cut).
        cache: the run's embedding cache, for the parts' frozen passes inside a step.
        refresh_batch_size: encoder batch size of the refreshes.

    ``observers`` (callables ``(ctx, loss, per_query)``) see what reached the loss at every
    step, after all strategies ran (``OBSERVE``); the effect tests record through them.
    """

    def __init__(self, encoder: SentenceTransformer, loss: Loss, pairs: TrainPairs,
                 miner: Miner | None = None, negatives: Sequence[NegativeStrategy] = (),
                 lr: float = 2e-5, weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                 mask_known_positives: bool = True, telemetry_every: int = 10,
                 doc_encoder: SentenceTransformer | None = None, dropout: bool = True,
                 sampler: Any = None, hooks: Sequence[Any] = (),
                 cache: EmbeddingCache | None = None, refresh_batch_size: int = 64) -> None:
        check_range("module.lr", lr, 0.0, low_open=True)
        check_range("module.weight_decay", weight_decay, 0.0)
        check_range("module.warmup_ratio", warmup_ratio, 0.0, 1.0)
        check_range("module.telemetry_every", telemetry_every, 0)
        super().__init__()
        self.encoder = encoder
        self.doc_encoder = doc_encoder
        self.loss_fn = loss
        self.pairs = pairs
        self.miner = miner
        self.steps = StepPipeline(loss, miner, negatives, sampler, hooks)
        self._register_models()
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.mask_known_positives = mask_known_positives
        self.telemetry_every = telemetry_every
        self.dropout = bool(dropout)
        self.observers: list[Any] = []
        self.clock = StepClock()
        self.refresher = Refresher(self.clock, refresh_batch_size)
        self.optimizer_steps_seen = 0
        self._t_step: float | None = None
        self._step_ctx: ScoreContext | None = None
        self.view = ModuleView(self, cache)
        for part in self.steps.parts:
            if isinstance(part, UsesTraining):
                part.bind(self.view)
        # kept in checkpoints, not sent to the loggers: they get the whole config (module.*)
        self.save_hyperparameters(ignore=["encoder", "loss", "pairs", "miner", "negatives",
                                          "doc_encoder", "sampler", "hooks", "cache",
                                          "refresh_batch_size"], logger=False)

    @property
    def strategies(self) -> list[NegativeStrategy]:
        """The in-batch strategies, in the order they apply (fixed when the module is built)."""
        return list(self.steps.at(Phase.IN_BATCH))

    def _register_models(self) -> None:
        """Register the models the parts declare (a ``doc_encoder`` becomes the module's)."""
        for part in (self.loss_fn, self.miner, *self.strategies):
            if not isinstance(part, DeclaresModels):
                continue
            for name, model in part.models(self.encoder, self.doc_encoder).items():
                if name == "doc_encoder":
                    self.doc_encoder = model
                elif hasattr(self, name):
                    raise TypeError(f"{type(part).__name__} declares a model {name!r}, a name "
                                    "the training module uses already")
                else:
                    self.add_module(name, model)

    # -- encoding ---------------------------------------------------------------------------
    def _encode(self, model: SentenceTransformer, texts: Sequence[str]) -> Tensor:
        encoding = self.steps.one(Phase.ENCODE)
        if encoding is not None:
            return encoding.encode(model, texts)  # type: ignore[no-any-return]
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

    # -- phases before the step -------------------------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """``Phase.EPOCH_START`` for ``epoch`` (idempotent: see :class:`Refresher`)."""
        self.refresher.epoch_start(self.steps.at(Phase.EPOCH_START), self.view, epoch,
                                   self._report, self._rank_zero)

    def on_train_epoch_start(self) -> None:
        self.start_epoch(self.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """``Phase.BEFORE_STEP``, then the step's timer starts."""
        self.refresher.before_step(self.steps.at(Phase.BEFORE_STEP), self.view, self._report,
                                   self._rank_zero)
        self._t_step = time.perf_counter()

    @property
    def _rank_zero(self) -> bool:
        return bool(self._trainer is None or self.trainer.is_global_zero)

    def _report(self, prefix: str, stats: dict[str, Any]) -> None:
        metrics = {f"{prefix}/{k}": float(v) for k, v in stats.items()
                   if isinstance(v, (int, float))}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    # -- the step ---------------------------------------------------------------------------
    def build_context(self, batch: dict[str, Any]) -> ScoreContext:
        """``ATTACH_NEGATIVES``, ``ENCODE`` and ``GATHER``: the batch's score context."""
        idx: Tensor = batch["idx"]
        qids, pos_ids = batch["qids"], batch["pos_ids"]
        neg_ids: list[list[str]] = []
        teacher = None
        miner = self.steps.one(Phase.ATTACH_NEGATIVES)
        if miner is not None:
            neg_ids, teacher_np = miner.negatives(idx.tolist(), self.current_epoch,
                                                  self.global_step)
            if teacher_np is not None:
                teacher = torch.as_tensor(teacher_np, dtype=torch.float32, device=self.device)
        flat_neg = [d for row in neg_ids for d in row]
        data = self.pairs.data
        doc_texts = list(batch["positives"]) + [data.doc_text(d) for d in flat_neg]
        q = self.encode_queries(batch["queries"])
        d = self.encode_docs(doc_texts)
        doc_model = self.doc_encoder if self.doc_encoder is not None else self.encoder
        counting.add(len(qids), grad=True)
        counting.add(len(doc_texts), grad=_trainable(doc_model))
        ctx = ScoreContext(
            q=q, d=d, doc_ids=list(pos_ids) + flat_neg, doc_texts=doc_texts, qids=list(qids),
            pos_ids=list(pos_ids), queries=list(batch["queries"]),
            pair_idx=idx.to(self.device), labels=torch.arange(len(qids), device=self.device),
            mask=torch.zeros(len(qids), len(doc_texts), dtype=torch.bool, device=self.device),
            weights=torch.ones(len(qids), device=self.device),
            teacher=teacher_matrix(teacher, len(qids), len(flat_neg), self.device),
            num_negatives=len(neg_ids[0]) if neg_ids else 0,
            positives=self.pairs.positives, step=self.global_step, epoch=self.current_epoch,
            max_steps=max(int(self.trainer.estimated_stepping_batches), 1)
            if self._trainer is not None else 1,
            temperature=float(self.loss_fn.temperature)
            if isinstance(self.loss_fn, HasTemperature) else 0.05,
        )
        ctx = gather_context(ctx)
        if self.mask_known_positives:
            ctx.mask |= known_positive_mask(ctx)
        return ctx

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.apply_modes()
        ctx = self.build_context(batch)
        for part in self.steps.at(Phase.SHAPE_CONTEXT):
            ctx = part.shape_context(ctx)
        for strategy in self.steps.at(Phase.IN_BATCH):
            ctx = strategy(ctx)
        loss, per_query = self.reduce(ctx)
        for part in self.steps.at(Phase.AFTER_LOSS):
            part.after_loss(ctx, per_query)
        for part in self.steps.at(Phase.OBJECTIVE):
            loss = part.joint_loss(ctx, loss)
        self.observe(ctx, loss, per_query)
        self._step_ctx = ctx  # for STEP_END, once the optimizer stepped
        return loss

    def reduce(self, ctx: ScoreContext) -> tuple[Tensor, Tensor | None]:
        """``Phase.LOSS``: the loss and, when it reports them, its unweighted per-query values."""
        loss_fn = self.steps.one(Phase.LOSS)
        if isinstance(loss_fn, ReportsPerQuery):
            loss, per_query = loss_fn.loss_and_per_query(ctx)
            return loss, per_query  # type: ignore[return-value]
        return loss_fn(ctx), None

    def observe(self, ctx: ScoreContext, loss: Tensor, per_query: Tensor | None) -> None:
        """``Phase.OBSERVE``: the observers, the loss, the learning rate and, every
        ``telemetry_every`` steps, the negative-quality telemetry and the time split."""
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
            logged.update({f"time/{k}": v for k, v in self.clock.split().items()})
            for logger in self.loggers:  # directly: every N steps, whatever log_every_n_steps
                logger.log_metrics(logged, step=self.global_step)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """``OPTIMIZER_STEP`` (when the optimizer stepped: not on every micro-batch of
        gradient accumulation), ``STEP_END``, then ``CHECKPOINT``: every part's state is
        final."""
        if self.global_step != self.optimizer_steps_seen:
            self.optimizer_steps_seen = self.global_step
            for part in self.steps.at(Phase.OPTIMIZER_STEP):
                part.on_optimizer_step(self.view)
        ctx, self._step_ctx = self._step_ctx, None
        for part in self.steps.at(Phase.STEP_END):
            part.on_step_end(self.view, ctx)
        if self._t_step is not None:  # forward, backward, optimizer step
            self.clock.train_step_s += time.perf_counter() - self._t_step
            self._t_step = None
        for part in self.steps.at(Phase.CHECKPOINT):
            part.after_batch(self.trainer)

    def on_fit_start(self) -> None:
        self.apply_modes()  # before Lightning's check for modules left in eval mode

    def on_train_start(self) -> None:
        self.optimizer_steps_seen = self.global_step  # a resumed run's steps are not new

    def on_train_end(self) -> None:
        """Background work of the parts stops (ANCE's asynchronous refresh: its negatives
        would never be used)."""
        for part in self.steps.parts:
            close = getattr(part, "close", None)
            if callable(close):
                close()

    def timings(self) -> dict[str, float]:
        """The time split of training so far (``time/…``)."""
        return self.clock.split()

    def steps_state(self) -> dict[str, Any]:
        """The module's own state for a checkpoint (its parts' is theirs): the step clock, the
        refresh counters and the optimizer steps seen."""
        return {"timings": self.clock.state_dict(), "refresher": self.refresher.state_dict(),
                "optimizer_steps_seen": int(self.optimizer_steps_seen)}

    def load_steps_state(self, state: dict[str, Any]) -> None:
        self.clock.load_state_dict(state["timings"])
        self.refresher.load_state_dict(state["refresher"])
        self.optimizer_steps_seen = int(state["optimizer_steps_seen"])

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


def _trainable(model: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in model.parameters())
