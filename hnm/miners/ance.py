"""ANCE: hard negatives re-mined with the current encoder on a step schedule."""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError, check_range
from hnm.miners.base import Mined, MinerBase
from hnm.types import EmbedFn, Phase, TrainingView

log = logging.getLogger(__name__)


class AnceMiner(MinerBase):
    """Dense hard negatives that follow the model: re-mined with the current encoder on a
    step schedule.

    Mining starts like ``dense_static`` (the starting model, before training). Then, every
    ``refresh_every_n_steps`` optimizer steps, the corpus and the training queries are
    re-encoded with the *current* encoder, the corpus is re-indexed and every query's pool is
    rebuilt with the shared filters of :class:`~hnm.miners.base.MinerBase` (positives removed,
    rank window, margins). The period is ``refresh_every_n_steps`` when set, else
    ``refresh_every_fraction`` of the run's optimizer steps (at least 1; the default 0.25
    re-mines at 1/4, 1/2 and 3/4 of the run, whatever its length). A refresh happens before
    the first micro-batch of its optimizer step, once per step under gradient accumulation.
    The refresh time is reported apart from the training-step time (``miner/refresh_s`` and
    the ``time_*`` stages of the telemetry, ``time/refresh_s`` in ``metrics.json``).

    ANCE without a refresh is ``dense_static`` with other defaults, so a run too short for any
    refresh to take effect (the period at least the run's optimizer steps; with
    ``async_refresh``, fewer than two refreshes, since the first only starts the background
    pass) is refused before training with a :class:`~hnm.errors.ConfigError` naming
    ``miner.refresh_every_n_steps``, unless ``allow_no_refresh=true`` (then it warns).
    :meth:`effect` adds ``refreshes``: the re-mined pools put in use so far.

    Implements ANCE (Xiong et al., ICLR 2021, "Approximate Nearest Neighbor Negative
    Contrastive Learning for Dense Text Retrieval"). ANCE refreshes its index asynchronously:
    a separate process re-encodes the corpus with a checkpoint while training goes on, and the
    trainer switches to the new negatives when the index is ready. With
    ``async_refresh=true`` this miner does the same in a background thread, with a frozen
    snapshot (deep copy) of the encoder taken at the refresh step (listed by
    :meth:`frozen_models` while it is held, so it stays in eval mode); to keep runs
    reproducible the new negatives are swapped in at the *next* scheduled refresh (the thread
    is waited for if it has not finished), so negatives are always exactly one period stale,
    as in ANCE, whatever the timing. The thread shares the CPU (or GPU) with training: on a
    2-core CPU it competes for the same cores and mostly reorders the work rather than hiding
    it; it pays off where encoding has spare hardware (a GPU with headroom, many cores).

    Departures from the paper: ANCE refreshes every few thousand steps from a separately saved
    checkpoint, with a warm-up on BM25 negatives; here the first pool comes from the starting
    encoder and the schedule is in steps of this run (by default relative to its length).
    ``async_refresh`` needs the view of training (handed over by the training module through
    :meth:`bind`); without it the refresh is synchronous.

    Args:
        refresh_every_n_steps: re-mine before every optimizer step that is a positive
            multiple of this; ``None``: use ``refresh_every_fraction``.
        refresh_every_fraction: the period as a fraction of the run's optimizer steps, in
            (0, 1), used when ``refresh_every_n_steps`` is ``None``.
        allow_no_refresh: accept (with a warning) a run in which no refresh takes effect.
        async_refresh: re-encode in a background thread with a snapshot of the encoder.
        encode_chunk: texts per encoding call in the background thread (it checks for
            cancellation between chunks, e.g. when training ends).
        batch_size: encoder batch size of the background thread.
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`.

    Recommended with InfoNCE over in-batch plus mined negatives, a rank window that skips the
    very top (``range_min`` 3–10) or ``relative_margin`` 0.05 against false negatives, and a
    refresh period long enough that re-encoding the corpus stays a small share of training.
    """

    phases: tuple[Phase, ...] = (Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES)

    def __init__(self, refresh_every_n_steps: int | None = None,
                 refresh_every_fraction: float = 0.25, allow_no_refresh: bool = False,
                 async_refresh: bool = False, encode_chunk: int = 1024, batch_size: int = 64,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if refresh_every_n_steps is not None:  # null: miner.refresh_every_fraction
            check_range("miner.refresh_every_n_steps", refresh_every_n_steps, 1)
        if refresh_every_n_steps is None and not 0.0 < float(refresh_every_fraction) < 1.0:
            raise ConfigError("miner.refresh_every_fraction must be in (0, 1) (a fraction of "
                              f"the run's steps); got {refresh_every_fraction}")
        check_range("miner.encode_chunk", encode_chunk, 1)
        self.refresh_every_n_steps = (None if refresh_every_n_steps is None
                                      else int(refresh_every_n_steps))
        self.refresh_every_fraction = float(refresh_every_fraction)
        self.allow_no_refresh = bool(allow_no_refresh)
        self.async_refresh = bool(async_refresh)
        self.encode_chunk = int(encode_chunk)
        check_range("miner.batch_size", batch_size, 1)
        self.batch_size = int(batch_size)
        self.refreshes = 0  # refresh calls (an asynchronous one may only start a pass)
        self._period: int | None = self.refresh_every_n_steps
        self.counters["refreshes"] = 0
        self._view: TrainingView | None = None
        self._job: _Job | _Done | None = None

    def bind(self, view: TrainingView) -> None:
        """Keep the view of training: the run length, and the encoders the asynchronous refresh
        snapshots."""
        self._view = view

    # -- schedule ---------------------------------------------------------------------------
    @property
    def period(self) -> int:
        """Optimizer steps between refreshes (a fraction is resolved by :meth:`check_schedule`,
        or from the view's run length)."""
        if self._period is None:
            steps = None if self._view is None else self._view.total_steps
            if steps is None:
                raise RuntimeError("AnceMiner: refresh_every_fraction needs the run length; "
                                   "call check_schedule(epochs, steps) first")
            self._period = self.period_for(int(steps))
        return self._period

    def period_for(self, steps: int) -> int:
        if self.refresh_every_n_steps is not None:
            return self.refresh_every_n_steps
        return max(1, int(self.refresh_every_fraction * steps))

    def check_schedule(self, epochs: int, steps: int) -> None:
        """Fix the period for a run of ``steps`` optimizer steps and refuse a run in which no
        refresh would take effect (refreshes fall before steps ``period, 2·period, …`` below
        ``steps``; the asynchronous path puts a pass in use at the refresh after it)."""
        super().check_schedule(epochs, steps)  # the curriculum's clock
        self._period = every = self.period_for(steps)
        needed = 2 if self.async_refresh else 1
        falls = max(steps - 1, 0) // every
        if falls >= needed:
            return
        knob = (f"miner.refresh_every_n_steps={every}" if self.refresh_every_n_steps is not None
                else f"miner.refresh_every_fraction={self.refresh_every_fraction} (a period "
                     f"of {every} steps)")
        why = (f"async_refresh puts a background pass in use at the next refresh, so it needs "
               f"two refreshes and gets {falls}" if self.async_refresh else
               "no refresh falls before the run ends")
        message = (f"{knob} but the run has {steps} optimizer steps: {why}, so ANCE would "
                   "train on its starting negatives only, as dense_static would. Lower "
                   "miner.refresh_every_n_steps (or set it to null and use "
                   "miner.refresh_every_fraction), lengthen the run, or set "
                   "miner.allow_no_refresh=true")
        if not self.allow_no_refresh:
            raise ConfigError(message)
        log.warning("ance: %s", message)

    def needs_refresh(self, step: int) -> bool:
        return step > 0 and step % self.period == 0

    # -- refreshing -------------------------------------------------------------------------
    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        """Re-mine with the current encoder (synchronous), or swap in the negatives of the
        previous snapshot and start a new one (asynchronous)."""
        self.refreshes += 1
        if not self.async_refresh or self._view is None:
            if self.async_refresh:
                log.warning("ance: async_refresh needs the view of training; refreshing "
                            "synchronously")
            stats = self.run(embed_queries, embed_docs, "refresh")
            self.counters["refreshes"] += 1
            return stats
        stats: dict[str, float] = {}
        t0 = time.perf_counter()
        if self._job is not None:
            mined = self._job.finish()
            if mined is not None:
                self.adopt(mined)
                self.counters["refreshes"] += 1
                stats.update(mined.stats)
        stats["wait_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._job = _Job(self, self._snapshot())
        stats["snapshot_s"] = time.perf_counter() - t0
        stats["swapped"] = float("time_total_s" in stats)
        if stats["swapped"]:
            self.last_stats = dict(stats)
        return stats

    def effect(self) -> dict[str, float]:
        """The shared figures plus ``refreshes``: re-mined pools put in use so far."""
        return {**super().effect(), "refreshes": float(self.counters["refreshes"])}

    def frozen_models(self) -> list[Any]:
        """The snapshot encoders of a background refresh in progress."""
        return [] if self._job is None else list(self._job.models)

    def close(self) -> None:
        """Cancel and join a background refresh (called when training ends)."""
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def settle(self) -> None:
        """Wait for a background refresh in progress and keep its pass (to be put in use at
        the next refresh, as it would have been)."""
        if isinstance(self._job, _Job):
            self._job = _Done(self._job.finish())

    def state_dict(self) -> dict[str, Any]:
        """The shared state, after :meth:`settle`: a background pass is plain values then."""
        self.settle()
        return super().state_dict()

    def _snapshot(self) -> list[Any]:
        """Frozen copies of the current query and document encoders (one model when they are
        the same; a frozen document encoder is used as it is)."""
        view = self._view
        assert view is not None
        q_model = _frozen_copy(view.encoder)
        doc = view.doc_encoder
        d_model = q_model if doc is None else doc if not _trainable(doc) else _frozen_copy(doc)
        return [q_model] if d_model is q_model else [q_model, d_model]

    def _training_over(self) -> bool:
        return self._view is not None and self._view.over


class _Job:
    """One background re-mining pass (:meth:`MinerBase.search`) over snapshot encoders."""

    def __init__(self, miner: AnceMiner, models: list[Any]) -> None:
        self.miner = miner
        self.models = models
        q_model, d_model = models[0], models[-1]
        self.eq = embed_fn(q_model, miner.batch_size, progress=False)
        self.ed = self.eq if d_model is q_model else embed_fn(d_model, miner.batch_size,
                                                               progress=False)
        self.mined: Mined | None = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ance-refresh", daemon=True)
        self._thread.start()

    def _chunked(self, embed: EmbedFn) -> EmbedFn:
        import numpy as np

        def f(texts: Any) -> Any:
            out = []
            for s in range(0, len(texts), self.miner.encode_chunk):
                if self._cancel.is_set() or self.miner._training_over():
                    raise _Cancelled
                out.append(embed(texts[s:s + self.miner.encode_chunk]))
            return np.concatenate(out) if out else embed(texts)

        return f

    def _work(self) -> None:
        try:
            self.mined = self.miner.search(self._chunked(self.eq), self._chunked(self.ed))
        except _Cancelled:
            pass
        except BaseException as err:  # noqa: BLE001 - re-raised in the training thread
            self.error = err

    def finish(self) -> Mined | None:
        """Wait for the thread; returns its pass (None if cancelled; raises what the thread
        raised)."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.mined

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join()


class _Done:
    """A background pass that finished before a checkpoint (or was restored from one)."""

    def __init__(self, mined: Mined | None) -> None:
        self.mined = mined
        self.models: list[Any] = []

    def finish(self) -> Mined | None:
        return self.mined

    def cancel(self) -> None:
        pass


class _Cancelled(Exception):
    pass


def _trainable(model: Any) -> bool:
    return any(p.requires_grad for p in model.parameters())


def _frozen_copy(model: Any) -> Any:
    snap = copy.deepcopy(model)
    snap.eval()
    for p in snap.parameters():
        p.requires_grad_(False)
    return snap
