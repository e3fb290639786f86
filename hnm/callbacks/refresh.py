"""Refresh model-dependent state (clusters, mined negatives) with the current encoder."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L

from hnm.cache import frozen_embed_fn
from hnm.dist import sharded_embed_fn
from hnm.encoders.embed import embed_fn
from hnm.types import BatchSampler, Miner

log = logging.getLogger(__name__)


def _embedders(module: Any, batch_size: int, progress: bool, step: int = 1):
    """No-grad embedders of the current weights; under DDP each rank embeds a share of the
    texts and every rank receives all embeddings (:func:`hnm.dist.sharded_embed_fn`), so the
    refresh that follows computes the same state on every rank.

    Before the first optimizer step (``step == 0``: NGAME's first clustering, TAS-B's first
    refresh) the weights are the starting ones and the embedders go through the embedding
    cache; so does a separate frozen document encoder (ADORE's) at any step."""
    doc_model = getattr(module, "doc_encoder", None) or module.encoder
    q_fn = frozen_embed_fn if step == 0 else embed_fn
    d_fn = frozen_embed_fn if step == 0 or doc_model is not module.encoder else embed_fn
    return (sharded_embed_fn(q_fn(module.encoder, batch_size, progress=progress)),
            sharded_embed_fn(d_fn(doc_model, batch_size, progress=progress)))


def _timed_refresh(part: BatchSampler | Miner, trainer: L.Trainer, pl_module: Any,
                   batch_size: int, progress: bool) -> dict[str, Any]:
    """``part.refresh`` with embedders of the current weights; its stats plus ``refresh_s``,
    which is also added to the module's ``timings["refresh_s"]`` (``time/refresh_frac``)."""
    t0 = time.perf_counter()
    eq, ed = _embedders(pl_module, batch_size, progress and trainer.is_global_zero,
                        trainer.global_step)
    stats = dict(part.refresh(eq, ed) or {})
    dt = time.perf_counter() - t0
    stats["refresh_s"] = dt
    timings = getattr(pl_module, "timings", None)
    if isinstance(timings, dict):
        timings["refresh_s"] = timings.get("refresh_s", 0.0) + dt
    return stats


def _log(trainer: L.Trainer, prefix: str, stats: dict[str, float], step: int) -> None:
    metrics = {f"{prefix}/{k}": float(v) for k, v in stats.items()
               if isinstance(v, (int, float))}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)


class SamplerRefresh(L.Callback):
    """Gives the batch sampler its epoch and, when it asks, re-clusters with the current encoder,
    before the epoch's first batch is composed.

    Lightning builds the epoch-0 batch iterator (and a resumed epoch's) in
    ``fit_loop.setup_data``, before any ``on_train_epoch_start`` hook, right after it asked
    the datamodule for its ``train_dataloader``; later epochs' iterators are built after
    ``on_train_epoch_start``. So :meth:`prepare` runs from both places: the datamodule calls it
    in ``train_dataloader`` (the checkpoint, the devices and, under DDP, the process group are
    in place by then), and ``on_train_epoch_start`` calls it for every later epoch. It is
    idempotent per epoch: the sampler's ``needs_refresh`` says whether anything is left to do.

    The time spent is logged as ``sampler/refresh_s`` and added to the module's
    ``timings["refresh_s"]``, separately from training-step time. The sampler in use is the
    datamodule's ``batch_sampler`` when there is one (under DDP the datamodule replaces the
    sampler by a rank-sharded one at global batch size), else the one given here.
    """

    def __init__(self, sampler: BatchSampler, batch_size: int = 64, progress: bool = True):
        self.sampler = sampler
        self.batch_size = batch_size
        self.progress = progress
        self.refreshes = 0

    def _active(self, trainer: L.Trainer) -> BatchSampler:
        dm = trainer.datamodule
        sampler = getattr(dm, "batch_sampler", None)
        return self.sampler if sampler is None else sampler

    def prepare(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Set the sampler's epoch and refresh it if it needs to, for ``trainer.current_epoch``."""
        epoch = trainer.current_epoch
        sampler = self._active(trainer)
        sampler.set_epoch(epoch)
        if not sampler.needs_refresh(epoch):
            return
        stats = _timed_refresh(sampler, trainer, pl_module, self.batch_size, self.progress)
        self.refreshes += 1
        log.info("sampler refresh at epoch %d: %s", epoch,
                 ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if isinstance(v, float)))
        _log(trainer, "sampler", stats, trainer.global_step)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.prepare(trainer, pl_module)


class MinerRefresh(L.Callback):
    """Before each optimizer step, asks the miner whether to re-mine, and does it (ANCE).

    The miner is asked with ``trainer.global_step`` before a training batch, and at most once
    per step: under gradient accumulation (``accumulate_grad_batches=k``) the k micro-batches
    of one optimizer step share the global step, so the refresh runs before the first of them
    and every micro-batch of that step trains on the same negatives.

    Under DDP every rank re-mines at the same step with sharded embedding (each rank encodes a
    share of corpus and queries, all ranks receive all embeddings), then searches locally, so
    every rank holds the negatives of all pairs. When training ends, a miner's ``close()`` (if
    it has one) is called, which cancels ANCE's background refresh.
    """

    def __init__(self, miner: Miner, batch_size: int = 64, progress: bool = True):
        self.miner = miner
        self.batch_size = batch_size
        self.progress = progress
        self.refreshes = 0
        self._asked_at: int | None = None  # the last global step the miner was asked about

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._asked_at:  # another micro-batch of the same optimizer step
            return
        self._asked_at = step
        if not self.miner.needs_refresh(step):
            return
        stats = _timed_refresh(self.miner, trainer, pl_module, self.batch_size, self.progress)
        self.refreshes += 1
        log.info("miner refresh at step %d took %.1fs", step, stats["refresh_s"])
        _log(trainer, "miner", stats, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop a background refresh still running (ANCE's ``close``): its negatives would
        never be used."""
        close = getattr(self.miner, "close", None)
        if callable(close):
            close()
