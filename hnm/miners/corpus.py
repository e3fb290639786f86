"""What a miner knows of the training data, indexed once: corpus rows, unique training queries,
each pair's query row and every known positive. Pure functions of the data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hnm.data.dataset import RetrievalData, TrainPairs


@dataclass
class CorpusIndex:
    """The rows a miner works in.

    Attributes:
        doc_ids: corpus document ids; a document's row is its position.
        doc_row: doc id -> row.
        qids: the unique training queries; a query's row is its position.
        pair_qrow: (pairs,) int64 query row of every training pair.
        pos_q, pos_d: (m,) int64 query row and corpus row of every known positive (the qrels'
            and the pairs' own), sorted by query row then corpus row.
        pos_slot: (query row, corpus row) -> its position in ``pos_q``/``pos_d``.
        max_positives: the most known positives of one query.
        fewest_known: the fewest known positives in the corpus of any query.
    """

    doc_ids: list[str]
    doc_row: dict[str, int]
    qids: list[str]
    pair_qrow: np.ndarray
    pos_q: np.ndarray
    pos_d: np.ndarray
    pos_slot: dict[tuple[int, int], int]
    max_positives: int
    fewest_known: int


def index_pairs(data: RetrievalData, pairs: TrainPairs) -> CorpusIndex:
    """Index the corpus ids, the unique queries and every known positive."""
    doc_ids = list(data.corpus)
    doc_row = {d: i for i, d in enumerate(doc_ids)}
    qids = list(dict.fromkeys(pairs.qids))
    qrow = {q: i for i, q in enumerate(qids)}
    pair_qrow = np.array([qrow[q] for q in pairs.qids], dtype=np.int64)
    known: list[set[str]] = [set(pairs.positives.get(q, ())) for q in qids]
    for q, d in zip(pairs.qids, pairs.pos_ids):
        known[qrow[q]].add(d)
    pq, pd = [], []
    for r, docs in enumerate(known):
        rows = sorted(doc_row[d] for d in docs if d in doc_row)
        pq += [r] * len(rows)
        pd += rows
    pos_q = np.asarray(pq, dtype=np.int64)
    pos_d = np.asarray(pd, dtype=np.int64)
    return CorpusIndex(
        doc_ids=doc_ids, doc_row=doc_row, qids=qids, pair_qrow=pair_qrow, pos_q=pos_q,
        pos_d=pos_d, pos_slot={(int(q), int(d)): i for i, (q, d) in enumerate(zip(pq, pd))},
        max_positives=int(np.bincount(pos_q, minlength=1).max()) if pq else 0,
        fewest_known=min((len(k & doc_row.keys()) for k in known), default=0))


def positive_mask(pos_q: np.ndarray, pos_d: np.ndarray, n_docs: int, idx: np.ndarray,
                  rows: np.ndarray | None = None) -> np.ndarray:
    """(n, k) bool: ``idx[i, j]`` is a known positive of query row ``rows[i]`` (default: all
    query rows in order)."""
    rows = np.arange(len(idx)) if rows is None else np.asarray(rows)
    n = max(n_docs, 1)
    keys = rows[:, None].astype(np.int64) * n + idx
    return np.isin(keys, pos_q * n + pos_d) & (idx >= 0)


def positive_slots(pos_q: np.ndarray, q: int) -> slice:
    """Where query row ``q``'s known positives sit in ``pos_q`` / ``pos_d`` (sorted)."""
    lo, hi = np.searchsorted(pos_q, [q, q + 1])
    return slice(int(lo), int(hi))


def lowest_positive_score(pos_q: np.ndarray, n_queries: int, pos_scores: np.ndarray
                          ) -> np.ndarray:
    """(nq,) lowest known-positive score per query (NaN without a scored positive)."""
    out = np.full(n_queries, np.inf, dtype=np.float64)
    np.fmin.at(out, pos_q, np.asarray(pos_scores, dtype=np.float64))
    out[np.isinf(out)] = np.nan
    return out.astype(np.float32)
