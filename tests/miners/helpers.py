"""Synthetic retrieval data and embedding functions with known geometry for miner tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.miners.base import Candidates, MinerBase


def planted(n_docs: int = 30, n_queries: int = 4, extra_pos: dict[str, list[str]] | None = None):
    """Queries ``q0..`` and docs ``d0..``; query i's positive is ``d{i}``; ``extra_pos`` adds
    more known positives (qid -> doc ids) to the qrels."""
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(n_docs)}
    queries = {f"q{i}": f"query {i}" for i in range(n_queries)}
    train = {f"q{i}": {f"d{i}": 1} for i in range(n_queries)}
    for q, docs in (extra_pos or {}).items():
        train[q].update({d: 1 for d in docs})
    data = RetrievalData("planted", corpus, queries, {"train": train})
    return data, TrainPairs.from_split(data, "train")


class FixedMiner(MinerBase):
    """Candidates given by hand: ``rank[qid]`` is the corpus ranking of each query (doc ids,
    best first) with score ``1 - 0.01 * rank``; every known positive scores ``pos_score``."""

    def __init__(self, ranking: dict[str, list[str]], pos_score: float = 0.9, **kw):
        super().__init__(**kw)
        self.ranking, self.fixed_pos = ranking, pos_score
        self.calls: list[int] = []

    def candidates(self, embed_queries, embed_docs, k: int) -> Candidates:
        self.calls.append(len(self.qids))
        width = max(len(r) for r in self.ranking.values())
        idx = np.full((len(self.qids), width), -1, dtype=np.int64)
        scores = np.full((len(self.qids), width), -np.inf, dtype=np.float32)
        for q, qid in enumerate(self.qids):
            rows = [self.doc_row[d] for d in self.ranking[qid]]
            idx[q, :len(rows)] = rows
            scores[q, :len(rows)] = 1.0 - 0.01 * np.arange(len(rows))
        pos = np.full(len(self.pos_q), self.fixed_pos, dtype=np.float32)
        return Candidates(idx, scores, pos, {"search_s": 0.0})


def no_embed(texts: Sequence[str]) -> np.ndarray:
    raise AssertionError("this miner must not encode")


def table_embed(table: dict[str, np.ndarray]):
    """An EmbedFn that looks each text up in ``table`` (normalised rows)."""

    def f(texts: Sequence[str]) -> np.ndarray:
        x = np.stack([table[t] for t in texts]).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return f
