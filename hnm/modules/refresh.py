"""The phases that recompute a part's state with the current encoder: ``Phase.EPOCH_START`` (the
sampler's epoch and re-clustering) and ``Phase.BEFORE_STEP`` (re-mining), with the mining before
training, timed on the run's :class:`StepClock`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hnm.modules.telemetry import time_split
from hnm.types import EmbedFn, TrainingView

log = logging.getLogger(__name__)


@dataclass
class StepClock:
    """Where the wall time of training goes: training steps (forward, backward, optimizer step
    of every batch), refreshes during training, mining before it (``time/…`` in
    ``metrics.json``, see :func:`~hnm.modules.telemetry.time_split`)."""

    train_step_s: float = 0.0
    refresh_s: float = 0.0
    mine_s: float = 0.0

    def split(self) -> dict[str, float]:
        return time_split(self.state_dict())

    def state_dict(self) -> dict[str, float]:
        return {"train_step_s": self.train_step_s, "refresh_s": self.refresh_s,
                "mine_s": self.mine_s}

    def load_state_dict(self, state: dict[str, float]) -> None:
        for key, value in state.items():
            setattr(self, key, float(value))


class Refresher:
    """Runs the refreshes of the run's parts with embedders of the current weights, times them
    on ``clock`` (``refresh_s``), logs their figures (``sampler/…``, ``miner/…``) and counts
    them.

    ``Phase.EPOCH_START`` (:meth:`epoch_start`) gives each part its epoch and refreshes it
    when it asks; it is idempotent per epoch (the part's ``needs_refresh`` says whether
    anything is left to do), since Lightning builds the epoch-0 batch iterator (and a resumed
    epoch's) before any epoch-start hook: the data module runs it from ``train_dataloader``
    and the module from ``on_train_epoch_start``. ``Phase.BEFORE_STEP`` (:meth:`before_step`)
    asks each part with the global step before a training batch, at most once per step: under
    gradient accumulation the micro-batches of one optimizer step share the global step, so
    the refresh runs before the first of them and every micro-batch of that step trains on the
    same negatives. Under DDP every rank refreshes at the same step with sharded embedding.

    Args:
        clock: the run's step clock.
        batch_size: encoder batch size of the refreshes.
        progress: show a progress bar while encoding (on global rank 0).
    """

    def __init__(self, clock: StepClock, batch_size: int = 64, progress: bool = True) -> None:
        self.clock = clock
        self.batch_size = int(batch_size)
        self.progress = bool(progress)
        self.sampler_refreshes = 0
        self.miner_refreshes = 0
        self.asked_at: int | None = None  # the last global step parts were asked about

    def mine(self, miner: Any, data: Any, pairs: Any, embed: EmbedFn) -> dict[str, float]:
        """The first mining, before training, with the starting weights (``mine_s``)."""
        t0 = time.perf_counter()
        stats = miner.mine(data, pairs, embed, embed) or {}
        self.clock.mine_s = time.perf_counter() - t0
        return stats

    def epoch_start(self, parts: Sequence[Any], view: TrainingView, epoch: int,
                    report: Callable[[str, dict[str, Any]], None], rank_zero: bool) -> None:
        for part in parts:
            part.set_epoch(epoch)
            if not part.needs_refresh(epoch):
                continue
            stats = self._timed(part, view, rank_zero)
            self.sampler_refreshes += 1
            log.info("sampler refresh at epoch %d: %s", epoch,
                     ", ".join(f"{k}={v:.4g}" for k, v in stats.items() if isinstance(v, float)))
            report("sampler", stats)

    def before_step(self, parts: Sequence[Any], view: TrainingView,
                    report: Callable[[str, dict[str, Any]], None], rank_zero: bool) -> None:
        step = view.step
        if step == self.asked_at:  # another micro-batch of the same optimizer step
            return
        self.asked_at = step
        for part in parts:
            if not part.needs_refresh(step):
                continue
            stats = self._timed(part, view, rank_zero)
            self.miner_refreshes += 1
            log.info("miner refresh at step %d took %.1fs", step, stats["refresh_s"])
            report("miner", stats)

    def _timed(self, part: Any, view: TrainingView, rank_zero: bool) -> dict[str, Any]:
        """``part.refresh`` with embedders of the current weights; its stats plus
        ``refresh_s``, which is also added to the clock's ``refresh_s``."""
        t0 = time.perf_counter()
        eq, ed = view.embedders(self.batch_size, self.progress and rank_zero)
        stats = dict(part.refresh(eq, ed) or {})
        dt = time.perf_counter() - t0
        stats["refresh_s"] = dt
        self.clock.refresh_s += dt
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"sampler_refreshes": self.sampler_refreshes,
                "miner_refreshes": self.miner_refreshes, "asked_at": self.asked_at}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler_refreshes = int(state["sampler_refreshes"])
        self.miner_refreshes = int(state["miner_refreshes"])
        self.asked_at = None if state["asked_at"] is None else int(state["asked_at"])
