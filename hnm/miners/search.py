"""The search of a mining pass: ranked candidates of the unique training queries, and what one
pass found (before its pools are put in use)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hnm.miners.filters import Pool


@dataclass
class Candidates:
    """Ranked candidates of the unique training queries, as returned by a miner's search.

    Attributes:
        idx: (nq, k) int64 corpus rows (index into ``MinerBase.doc_ids``) by descending score;
            -1 marks a missing slot (approximate search, or a ragged list from a file).
        scores: (nq, k) float32 scores aligned with ``idx`` (-inf or NaN where missing).
        pos_scores: (m,) float32 score of every known positive, aligned with
            ``MinerBase.pos_q`` / ``MinerBase.pos_d`` (NaN where unknown).
        timings: seconds spent, e.g. ``{"encode_s": …, "search_s": …}``.
    """

    idx: np.ndarray
    scores: np.ndarray
    pos_scores: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Mined:
    """The outcome of one search-and-filter pass (:meth:`MinerBase.search`), not yet in use.

    Attributes:
        pool: the per-query pools.
        pos_scores: (m,) the miner's score of every known positive (aligned with ``pos_q``).
        removed: the filter counts of :func:`~hnm.miners.filters.select` (and the miner's own).
        stats: the telemetry of :func:`~hnm.miners.telemetry.mining_telemetry`.
    """

    pool: Pool
    pos_scores: np.ndarray
    removed: dict[str, int]
    stats: dict[str, float]


def dense_search(q_emb: np.ndarray, d_emb: np.ndarray, k: int, pos_q: np.ndarray,
                 pos_d: np.ndarray, index: str = "flat", backend: str = "auto",
                 device: str | None = None, query_chunk: int = 4096, seed: int = 0
                 ) -> tuple[Candidates, Any]:
    """Inner-product top-``k`` over a :class:`~hnm.index.DocIndex` (chunked, never the full
    query × corpus matrix) and the scores of every known positive (``pos_q``, ``pos_d``).

    Returns:
        The candidates and the corpus index built for them.
    """
    from hnm.index import DocIndex

    t0 = time.perf_counter()
    doc_index = DocIndex(d_emb, backend=backend, index=index,  # type: ignore[arg-type]
                         device=device, query_chunk=query_chunk, seed=seed)
    scores, idx = doc_index.search(q_emb, k)
    pos = np.einsum("ij,ij->i", q_emb[pos_q], d_emb[pos_d]).astype(np.float32)
    return Candidates(idx, scores, pos, {"search_s": time.perf_counter() - t0}), doc_index
