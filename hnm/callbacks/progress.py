"""Training progress as plain log lines, for logs that are not a terminal (SLURM, nohup, CI)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import lightning as L
from omegaconf import DictConfig

from hnm.errors import check_choice, check_range

log = logging.getLogger("hnm.progress")

# the layout of tqdm's progress bars (what encoding and mining print), without the bar
LINE_FORMAT = ("train step {n_fmt}/{total_fmt} ({percentage:.0f}%) "
               "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")
ENABLED = ("auto", True, False)


class ProgressLines(L.Callback):
    """Logs ``train step 40/400 (10%) [00:32<04:48, 1.25it/s, loss=2.3071]`` every
    ``every_n_steps`` optimizer steps or ``every_seconds`` seconds, whichever comes first, and
    after the last step (rank 0 only). The loss is the mean over the steps since the previous
    line, the rate that of those steps; the time left assumes that rate.

    Args:
        every_n_steps: steps between lines (0: no step rule).
        every_seconds: seconds between lines (0: no time rule).
    """

    def __init__(self, every_n_steps: int = 50, every_seconds: float = 60.0):
        check_range("progress.every_n_steps", every_n_steps, 0)
        check_range("progress.every_seconds", every_seconds, 0)
        self.every_n_steps = int(every_n_steps)
        self.every_seconds = float(every_seconds)
        self._reset(0)

    def _reset(self, step: int) -> None:
        now = time.perf_counter()
        self._last_step, self._last_time = step, now
        self._losses: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._reset(trainer.global_step)  # a resumed run counts from its first step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self._losses.append(float(loss.detach() if hasattr(loss, "detach") else loss))
        step = trainer.global_step
        total = _total_steps(trainer)
        due_steps = self.every_n_steps and step - self._last_step >= self.every_n_steps
        due_time = (self.every_seconds
                    and time.perf_counter() - self._last_time >= self.every_seconds)
        if step > self._last_step and (due_steps or due_time or (total and step >= total)):
            self.emit(trainer, step, total)

    def emit(self, trainer: L.Trainer, step: int, total: int | None) -> None:
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        postfix = (f"loss={sum(self._losses) / len(self._losses):.4f}" if self._losses else "")
        if trainer.is_global_zero:
            log.info("%s", format_line(step, total, now - self._t0, rate, postfix))
        self._reset(step)


def format_line(step: int, total: int | None, elapsed: float, rate: float,
                postfix: str = "") -> str:
    """One progress line (tqdm's time and rate formats)."""
    from tqdm import tqdm

    return tqdm.format_meter(step, total, elapsed, rate=rate, bar_format=LINE_FORMAT,
                             postfix=postfix or None)


def _total_steps(trainer: L.Trainer) -> int | None:
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - no dataloader yet, or an infinite one
        return None
    return int(total) if total not in (None, float("inf")) and total > 0 else None


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def progress_lines(node: DictConfig | None, trainer_cfg: DictConfig) -> ProgressLines | None:
    """The :class:`ProgressLines` callback when ``progress.enabled`` asks for it: ``true``;
    ``auto`` (default) when stdout is not a terminal and the trainer config does not switch
    Lightning's progress bar on (``trainer.enable_progress_bar=true``); ``false`` never.
    Where it is on, the caller turns Lightning's bar off (in a log it prints one last frame,
    or carriage-return frames)."""
    node = node if node is not None else DictConfig({})
    enabled = node.get("enabled", "auto")
    check_choice("progress.enabled", enabled, ENABLED)
    if enabled == "auto":
        enabled = (not stdout_is_terminal()
                   and trainer_cfg.get("enable_progress_bar") is not True)
    if not enabled:
        return None
    return ProgressLines(node.get("every_n_steps", 50), node.get("every_seconds", 60.0))
