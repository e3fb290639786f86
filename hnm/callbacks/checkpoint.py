"""Periodic, atomic checkpoints that a run resumes from exactly, and the interrupt that saves one.

:class:`RunCheckpoint` replaces Lightning's ``ModelCheckpoint``: every
``checkpoint.every_n_steps`` optimizer steps and every ``checkpoint.every_minutes`` minutes
(whichever comes first), at the end of training, and when the run is interrupted (Ctrl-C,
SIGTERM), it writes ``checkpoints/step_NNNNNNN.ckpt`` and points ``checkpoints/last.ckpt`` at
it. Each file is written to a temporary name in the same folder, flushed to disk and renamed
into place, so a run killed while writing leaves the previous checkpoint intact; the newest
``checkpoint.keep`` step files are kept (``last.ckpt`` is a hard link to the newest).

The checkpoint of a batch is cut at the very end of it, in the step's last phase
(``Phase.CHECKPOINT``: the training module calls :meth:`RunCheckpoint.after_batch` after the
parts' optimizer-step and step-end hooks, the queue's momentum update and enqueue), so that it
holds the state the next batch starts from.

Each checkpoint carries, under ``checkpoint["hnm"]``, the state of every part of the run and
its position in the epoch (:mod:`hnm.checkpoint`), so ``hnm train resume=<run folder>``
continues mid-epoch with the same batches, negatives and random numbers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L

from hnm.errors import check_range
from hnm.types import Phase

log = logging.getLogger(__name__)


class StopRequest:
    """The signal that asked the run to stop (None while none did)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextmanager
def interrupts(request: StopRequest) -> Iterator[StopRequest]:
    """Inside the block, SIGINT and SIGTERM only record themselves in ``request``: the
    training step in progress finishes, a checkpoint is written and training stops. A second
    Ctrl-C stops at once (Python's default handler is back after the first)."""
    def handler(signum: int, frame: Any) -> None:
        request.signum = request.signum or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # straight to the file descriptor, not through logging: the signal can arrive in the
        # middle of a log record being written, and a buffered stream entered twice raises
        try:
            os.write(2, f"\nhnm: received {signal.Signals(signum).name}: finishing this step, "
                        "then saving a checkpoint\n".encode())
        except OSError:
            pass

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: leave the process's handlers alone
        yield request
        return
    try:
        yield request
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _replace_durably(tmp: Path, final: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


class RunCheckpoint(L.Callback):
    """Args:
        folder: where checkpoints go (``<run folder>/checkpoints``).
        state: ``state(trainer, module, batches_done) -> dict``, the run's
            ``checkpoint["hnm"]`` (:class:`hnm.checkpoint.RunState`).
        every_n_steps: optimizer steps between checkpoints (null: none by steps).
        every_minutes: minutes between checkpoints (null: none by time).
        keep: step checkpoints kept besides ``last.ckpt``'s (the newest ones).
        request: the interrupt flag that :func:`interrupts` sets.
    """

    phases = (Phase.CHECKPOINT,)

    def __init__(self, folder: str | Path, state: Any, every_n_steps: int | None = 1000,
                 every_minutes: float | None = 30.0, keep: int = 2,
                 request: StopRequest | None = None) -> None:
        if every_n_steps is not None:
            check_range("checkpoint.every_n_steps", every_n_steps, 1)
        if every_minutes is not None:
            check_range("checkpoint.every_minutes", every_minutes, 0.0, low_open=True)
        check_range("checkpoint.keep", keep, 1)
        self.folder = Path(folder)
        self.state = state
        self.every_n_steps = None if every_n_steps is None else int(every_n_steps)
        self.every_s = None if every_minutes is None else float(every_minutes) * 60.0
        self.keep = int(keep)
        self.request = request or StopRequest()
        self.saved: list[Path] = []
        self.interrupted_at: Path | None = None
        # a resumed run: puts every part and generator back at its first batch
        self.restore_at_first_batch: Any = None
        self._batches_done = 0
        self._last_time = time.monotonic()
        self._last_step = -1

    # -- when --------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._last_step, self._last_time = int(trainer.global_step), time.monotonic()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        """A resumed run, at its first batch: every part and random generator back to the
        checkpoint's state, as late as possible, so that what ran in between (the resumed
        epoch's start hooks, which ran before the checkpoint already) changes nothing. This
        callback comes first, before the refresh callbacks of the same batch."""
        if self.restore_at_first_batch is not None:
            restore, self.restore_at_first_batch = self.restore_at_first_batch, None
            restore()

    def after_batch(self, trainer: L.Trainer) -> None:
        """``Phase.CHECKPOINT``: the end of a training batch, after the parts' step-end hooks,
        which a checkpoint must include (the training module calls it)."""
        self._batches_done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        step = int(trainer.global_step)
        stop = self.request.signum is not None or bool(getattr(trainer, "received_sigterm",
                                                               False))
        if stop:
            if self.request.signum is None:
                self.request.signum = int(signal.SIGTERM)
            self.interrupted_at = self.save(trainer)
            trainer.should_stop = True
            return
        if step == self._last_step:  # a micro-batch of gradient accumulation
            return
        due = (self.every_n_steps is not None and step % self.every_n_steps == 0) or (
            self.every_s is not None and time.monotonic() - self._last_time >= self.every_s)
        if due and step > 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.request.signum is None and int(trainer.global_step) != self._last_step:
            self.save(trainer)

    # -- what --------------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint["hnm"] = self.state(trainer, pl_module, self._batches_done)

    def save(self, trainer: L.Trainer) -> Path:
        step = int(trainer.global_step)
        final = self.folder / f"step_{step:07d}.ckpt"
        tmp = self.folder / f".{final.name}.tmp-{os.getpid()}"
        if trainer.is_global_zero:
            self.folder.mkdir(parents=True, exist_ok=True)
        try:
            trainer.save_checkpoint(str(tmp), weights_only=False)  # the whole state
            if trainer.is_global_zero:
                _replace_durably(tmp, final)
                link = self.folder / f".last.ckpt.tmp-{os.getpid()}"
                link.unlink(missing_ok=True)
                os.link(final, link)
                os.replace(link, self.folder / "last.ckpt")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._last_step, self._last_time = step, time.monotonic()
        if final not in self.saved:
            self.saved.append(final)
        self._prune()
        log.info("checkpoint at step %d: %s", step, final)
        return final

    def _prune(self) -> None:
        ours = sorted(self.folder.glob("step_*.ckpt"))
        for old in ours[:-self.keep]:
            old.unlink(missing_ok=True)
