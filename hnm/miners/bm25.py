"""Lexical hard negatives with BM25 (bm25s)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hnm.errors import check_range
from hnm.miners.base import Candidates, MinerBase
from hnm.types import EmbedFn


class BM25Miner(MinerBase):
    """Negatives that share words with the query: the top BM25 documents that are not positives.

    Queries and documents are lowercased and split into word tokens (``\\w\\w+``, no stemming,
    no stop-word list); the corpus is indexed once with ``bm25s`` (Lù, 2024, "BM25S: Orders of
    magnitude faster lexical search via eager sparse scoring") using Lucene's BM25 (Robertson &
    Zaragoza, 2009). Documents with a BM25 score of 0 (no word in common) are not candidates;
    a query left short is padded with random documents like every miner's.

    BM25 negatives are the classic DPR recipe (Karpukhin et al., EMNLP 2020: "BM25 negatives"):
    lexically close but often semantically off, so complementary to dense negatives. The
    encoder is not used. The margins and ``teacher_scores`` work on raw BM25 scores, which
    are unbounded and on another scale than cosine similarities. Departures from DPR: DPR
    takes the top BM25 passages that do not contain the answer string (Lucene, with its
    analyser); here a candidate is excluded only when it is a labelled positive, the
    tokenisation has no stemming or stop words, and ``num_negatives`` of them (not one) are
    drawn per pair from the rank window.

    Args:
        k1, b: BM25 term-frequency saturation and length normalisation.
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`.

    Recommended with InfoNCE (in-batch plus BM25 negatives), ``num_negatives`` 1–5, and a
    small ``range_min`` to step over near-duplicates of the positive.
    """

    uses_encoder = False

    def __init__(self, k1: float = 1.5, b: float = 0.75, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_range("miner.k1", k1, 0.0)
        check_range("miner.b", b, 0.0, 1.0)
        self.k1, self.b = float(k1), float(b)

    def candidates(self, embed_queries: EmbedFn, embed_docs: EmbedFn, k: int) -> Candidates:
        import bm25s

        t0 = time.perf_counter()
        opts = {"lower": True, "stopwords": None, "show_progress": False}
        corpus = bm25s.tokenize([self.data.doc_text(d) for d in self.doc_ids], **opts)
        queries = bm25s.tokenize([self.data.queries[q] for q in self.qids], return_ids=False,
                                 **opts)
        t1 = time.perf_counter()
        retriever = bm25s.BM25(k1=self.k1, b=self.b)
        retriever.index(corpus, show_progress=False)
        idx, scores = retriever.retrieve(queries, k=k, show_progress=False)
        idx = np.asarray(idx, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        zero = scores <= 0
        idx[zero], scores[zero] = -1, -np.inf
        pos = np.full(len(self.pos_q), np.nan, dtype=np.float32)
        for q in np.unique(self.pos_q):
            slots = np.flatnonzero(self.pos_q == q)
            pos[slots] = retriever.get_scores(queries[q])[self.pos_d[slots]]
        return Candidates(idx, scores, pos, {"tokenize_s": t1 - t0,
                                             "search_s": time.perf_counter() - t1})
