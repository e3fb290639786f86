"""Write the training curve (step, loss, learning rate) to a small CSV in the run folder."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import lightning as L
import torch

from hnm.runinfo import claim

COLUMNS = ("step", "epoch", "loss", "lr", "elapsed_s")


class TrainCurve(L.Callback):
    """After every optimizer step, appends ``step, epoch, loss, lr, elapsed_s`` to a CSV.

    The file is what ``hnm compare`` plots, so that curves are available whatever logger
    (or none) the run used. ``step`` counts optimizer steps done (1 after the first), ``loss``
    is the step's training loss (the last micro-batch's under gradient accumulation) and
    ``elapsed_s`` the wall time since the fit started. Only global rank 0 writes; an existing
    file is never overwritten.

    Args:
        path: the CSV to create (``<run folder>/train_curve.csv`` in ``hnm train``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._t0 = 0.0
        self._last_step = -1
        self._lr = float("nan")
        # a resumed run: the step of its checkpoint; rows after it (trained on after the
        # checkpoint, before the run was killed) are dropped, and the file continues
        self.resume_step: int | None = None

    def _continue(self, step: int) -> None:
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(kept)
        tmp.replace(self.path)
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.resume_step is not None and self.path.is_file():
            self._continue(self.resume_step)
        else:
            claim(self.path, self.path.name)
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(COLUMNS)
        self._t0 = time.perf_counter()
        self._last_step = trainer.global_step  # 0, or the step a resumed run starts at

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self._writer is not None and trainer.optimizers:  # the rate this step uses
            self._lr = float(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self._writer is None or step <= self._last_step:  # a micro-batch, no optimizer step
            return
        self._last_step = step
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            loss = loss.detach().float().item()
        self._writer.writerow([step, trainer.current_epoch,
                               "" if loss is None else f"{float(loss):.6g}", f"{self._lr:.6g}",
                               f"{time.perf_counter() - self._t0:.3f}"])
        assert self._file is not None
        self._file.flush()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule,
                     exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None
