"""Learning curves: the current encoder evaluated on a fixed validation subset during training."""

from __future__ import annotations

import csv
import logging
import random
import time
from pathlib import Path
from typing import IO, Any

import lightning as L
import numpy as np
import torch

from hnm import counting
from hnm.errors import check_range
from hnm.runinfo import claim

log = logging.getLogger(__name__)
CURVE_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")


class ValCurve(L.Callback):
    """Evaluates the encoder being trained every ``every_n_steps`` optimizer steps, as
    sentence-transformers' trainer does with ``eval_steps``: at step 0 (the starting model),
    after every N-th step and after the last one.

    Each point is logged as ``val/{dataset}/{metric}`` at its step and appended to
    ``val_curve.csv`` (``step, epoch, ndcg@10, recall@100, mrr@10, map@100, eval_s``) in the
    run folder, which ``hnm compare`` plots per group. The point after step N is computed when
    batch N+1 starts (after the batch was drawn and any refresh of this batch ran, before the
    step's timer), the last one when training ends. Training is unaffected: the encoder's
    modes are restored, and the evaluation runs inside saved-and-restored random states (torch
    CPU and the current CUDA device, NumPy, ``random``), so a run's loss curve is the same with
    and without the curve. Only global rank 0 evaluates; the other ranks wait for it at their
    next collective.

    Args:
        evaluator: a :class:`~hnm.eval.RetrievalEvaluator` of the validation subset
            (:func:`hnm.eval.subset.eval_subset`).
        every_n_steps: optimizer steps between points (>= 1).
        path: the CSV to create.
        embed: ``f(module) -> (embed_queries, embed_docs)``, embedders of the current weights.
    """

    def __init__(self, evaluator: Any, every_n_steps: int, path: str | Path, embed: Any) -> None:
        check_range("eval.every_n_steps", every_n_steps, 1)
        self.evaluator = evaluator
        self.every_n_steps = int(every_n_steps)
        self.path = Path(path)
        self.embed = embed
        self.resume_step: int | None = None  # a resumed run: the checkpoint's step
        self.fingerprint = ""  # of the validation subset (set by hnm train; context.json)
        self.seconds = 0.0
        self.texts = 0  # texts embedded for the curve (evaluation, not the strategy's cost)
        self.points = 0
        self._epoch = 0
        self._last = -1
        self._file: IO[str] | None = None
        self._writer: Any = None

    def _open(self, step: int) -> None:
        """A new file (never over an existing one), or, for a resumed run, its own file without
        the points after ``step`` (computed after the checkpoint, before the run stopped)."""
        if self.resume_step is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
            self._last = max((int(r[0]) for r in kept[1:]), default=-1)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(kept)
            tmp.replace(self.path)
            self._file = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            return
        claim(self.path, self.path.name)
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(["step", "epoch", *CURVE_METRICS, "eval_s"])

    def _point(self, trainer: L.Trainer, module: Any) -> None:
        step = int(trainer.global_step)
        if step <= self._last or self._writer is None:
            return
        self._last = step
        t0, n0 = time.perf_counter(), counting.thread_texts()
        states = (random.getstate(), np.random.get_state())
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            eq, ed = self.embed(module)
            found = self.evaluator(eq, ed, "val")
        random.setstate(states[0])
        np.random.set_state(states[1])
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.texts += counting.thread_texts() - n0
        self.points += 1
        name = self.evaluator.data.name
        row = [found.get(f"val/{name}/{m}", float("nan")) for m in CURVE_METRICS]
        self._writer.writerow([step, self._epoch, *(f"{v:.6f}" for v in row),
                               f"{dt:.2f}"])
        assert self._file is not None
        self._file.flush()
        for logger in trainer.loggers:
            logger.log_metrics(found, step=step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = int(trainer.global_step) - 1
        if trainer.is_global_zero:
            self._open(int(trainer.global_step))
        if trainer.global_step % self.every_n_steps == 0:
            self._point(trainer, pl_module)  # step 0: the starting model

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._point(trainer, pl_module)
        self._epoch = trainer.current_epoch  # the epoch of the steps that follow

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._point(trainer, pl_module)  # the last step, when it was not a multiple of N
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def metrics(self) -> dict[str, float]:
        """``time/val_eval_s`` and ``val/points``, for ``metrics.json``."""
        return {"time/val_eval_s": self.seconds, "val/points": float(self.points),
                "compute/nograd_texts_val": float(self.texts)}
