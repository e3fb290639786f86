"""ANCE: hard negatives re-mined with the current encoder on a step schedule."""

from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any

from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError
from hnm.miners.base import MinerBase
from hnm.miners.filters import Pool
from hnm.types import EmbedFn

log = logging.getLogger(__name__)


class AnceMiner(MinerBase):
    """Dense hard negatives that follow the model: re-mined every ``refresh_every_n_steps``.

    Mining starts like ``dense_static`` (the starting model, before training). Then, every
    ``refresh_every_n_steps`` optimizer steps, the corpus and the training queries are
    re-encoded with the *current* encoder, the corpus is re-indexed and every query's pool is
    rebuilt with the shared filters of :class:`~hnm.miners.base.MinerBase` (positives removed,
    rank window, margins). The refresh time is reported apart from the training-step time
    (``miner/refresh_s`` and the ``time_*`` stages of the telemetry, ``time/refresh_s`` in
    ``metrics.json``).

    Implements ANCE (Xiong et al., ICLR 2021, "Approximate Nearest Neighbor Negative
    Contrastive Learning for Dense Text Retrieval"). ANCE refreshes its index asynchronously:
    a separate process re-encodes the corpus with a checkpoint while training goes on, and the
    trainer switches to the new negatives when the index is ready. With
    ``async_refresh=true`` this miner does the same in a background thread, with a frozen
    snapshot (deep copy) of the encoder taken at the refresh step; to keep runs reproducible
    the new negatives are swapped in at the *next* scheduled refresh (the thread is waited for
    if it has not finished), so negatives are always exactly one period stale, as in ANCE,
    whatever the timing. The thread shares the CPU (or GPU) with training: on a 2-core CPU it
    competes for the same cores and mostly reorders the work rather than hiding it; it pays
    off where encoding has spare hardware (a GPU with headroom, many cores).

    Departures from the paper: ANCE refreshes every few thousand steps from a separately saved
    checkpoint, with a warm-up on BM25 negatives; here the first pool comes from the starting
    encoder and the schedule is in steps of this run. ``async_refresh`` needs the training
    module (given by ``hnm train`` through :meth:`configure_module`); without it the refresh is
    synchronous.

    Args:
        refresh_every_n_steps: re-mine before every step that is a positive multiple of this.
        async_refresh: re-encode in a background thread with a snapshot of the encoder.
        encode_chunk: texts per encoding call in the background thread (it checks for
            cancellation between chunks, e.g. when training ends).
        batch_size: encoder batch size of the background thread.
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`.

    Recommended with InfoNCE over in-batch plus mined negatives, a rank window that skips the
    very top (``range_min`` 3–10) or ``relative_margin`` 0.05 against false negatives, and a
    refresh period long enough that re-encoding the corpus stays a small share of training.
    """

    def __init__(self, refresh_every_n_steps: int = 100, async_refresh: bool = False,
                 encode_chunk: int = 1024, batch_size: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(refresh_every_n_steps) < 1:
            raise ConfigError("miner.refresh_every_n_steps must be >= 1; got "
                              f"{refresh_every_n_steps}")
        if int(encode_chunk) < 1:
            raise ConfigError(f"miner.encode_chunk must be >= 1; got {encode_chunk}")
        self.refresh_every_n_steps = int(refresh_every_n_steps)
        self.async_refresh = bool(async_refresh)
        self.encode_chunk = int(encode_chunk)
        self.batch_size = int(batch_size)
        self.refreshes = 0
        self._module: Any = None
        self._job: _Job | None = None

    def configure_module(self, module: Any) -> None:
        """Remember the training module, whose encoders the asynchronous refresh snapshots."""
        self._module = module

    def needs_refresh(self, step: int) -> bool:
        return step > 0 and step % self.refresh_every_n_steps == 0

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        """Re-mine with the current encoder (synchronous), or swap in the negatives of the
        previous snapshot and start a new one (asynchronous)."""
        self.refreshes += 1
        if not self.async_refresh or self._module is None:
            if self.async_refresh:
                log.warning("ance: async_refresh needs the training module; refreshing "
                            "synchronously")
            return self.run(embed_queries, embed_docs, "refresh")
        stats: dict[str, float] = {}
        t0 = time.perf_counter()
        if self._job is not None:
            stats.update(self._job.finish())
            if self._job.pool is not None:
                self.pool, self.pos_scores = self._job.pool, self._job.pos_scores
                self.last_stats = dict(stats)
        stats["wait_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self._job = _Job(self, self._snapshot())
        stats["snapshot_s"] = time.perf_counter() - t0
        stats["swapped"] = float("time_total_s" in stats)
        return stats

    def close(self) -> None:
        """Cancel and join a background refresh (called when training ends)."""
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def _snapshot(self) -> tuple[EmbedFn, EmbedFn]:
        """Frozen copies of the module's current query and document encoders."""
        m = self._module
        q_model = _frozen_copy(m.encoder)
        doc = getattr(m, "doc_encoder", None)
        d_model = q_model if doc is None else doc if not _trainable(doc) else _frozen_copy(doc)
        return (embed_fn(q_model, self.batch_size, progress=False),
                embed_fn(d_model, self.batch_size, progress=False))

    def _training_over(self) -> bool:
        trainer = getattr(self._module, "_trainer", None)
        state = getattr(trainer, "state", None)
        return bool(state is not None and (getattr(state, "finished", False)
                                           or getattr(trainer, "interrupted", False)))


class _Job:
    """One background re-mining pass over a snapshot of the encoders."""

    def __init__(self, miner: AnceMiner, embedders: tuple[EmbedFn, EmbedFn]) -> None:
        self.miner = miner
        self.eq, self.ed = embedders
        self.pool: Pool | None = None
        self.pos_scores: Any = None
        self.stats: dict[str, float] = {}
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
        m = self.miner
        try:
            t0 = time.perf_counter()
            cands = m.candidates(self._chunked(self.eq), self._chunked(self.ed), m.search_k)
            t1 = time.perf_counter()
            pool, removed = m.filter(cands)
            timings = dict(cands.timings)
            timings["filter_s"] = time.perf_counter() - t1
            timings["total_s"] = time.perf_counter() - t0
            from hnm.miners.telemetry import mining_telemetry

            self.stats = mining_telemetry(pool, m.query_pos_score(cands.pos_scores), removed,
                                          m.num_negatives, m.mined_quota(), timings)
            self.pool, self.pos_scores = pool, cands.pos_scores
        except _Cancelled:
            pass
        except BaseException as err:  # noqa: BLE001 - re-raised in the training thread
            self.error = err

    def finish(self) -> dict[str, float]:
        """Wait for the thread; returns its telemetry (raises what the thread raised)."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return dict(self.stats)

    def cancel(self) -> None:
        self._cancel.set()
        self._thread.join()


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
