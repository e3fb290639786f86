"""Dense-retrieval evaluation of a split: embed queries and corpus, search top-k, score."""

from __future__ import annotations

import logging
import random
import time

import numpy as np

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError, check_range
from hnm.eval.metrics import evaluate_run
from hnm.index.search import Backend, DocIndex, IndexKind
from hnm.types import EmbedFn

log = logging.getLogger(__name__)


class RetrievalEvaluator:
    """BEIR-style evaluation: every judged query of a split against the whole corpus.

    Args:
        data: the dataset.
        split: qrels split to evaluate (``test``, ``dev``, ...).
        k: documents retrieved per query (the run depth; ``recall@100`` needs ``k >= 100``).
        max_queries: evaluate a deterministic random subset of this many queries (by ``seed``).
        batch_size: texts handed to an embed function per call (it batches further inside;
            larger calls let it sort more texts by length).
        backend, index: search backend and index type, see :class:`hnm.index.DocIndex`.
        seed: seed of the query subset.
        device: search device (``None``: CUDA when available).

    Calling it returns ``{"{prefix}/{data.name}/{metric}": value}`` for ``ndcg@10``,
    ``recall@100``, ``mrr@10`` and ``map@100``, averaged over the evaluated queries (queries
    whose judgements are all 0 count, as in BEIR). After a call, ``run`` (query id -> doc id
    -> score), ``per_query`` (query id -> metric -> value) and ``timings`` (seconds of
    ``embed_queries``, ``embed_corpus``, ``search``, ``metrics``) describe it.
    """

    def __init__(self, data: RetrievalData, split: str = "test", k: int = 100,
                 max_queries: int | None = None, batch_size: int = 64, backend: Backend = "auto",
                 index: IndexKind = "flat", seed: int = 0, device: str | None = None) -> None:
        check_range("eval.evaluator.k", k, 1)
        check_range("eval.evaluator.batch_size", batch_size, 1)
        if max_queries is not None:
            check_range("eval.evaluator.max_queries", max_queries, 1)
        self.data, self.split, self.k, self.batch_size = data, split, k, batch_size
        self.backend, self.index, self.device = backend, index, device
        qrels = data.split(split)
        qids = sorted(q for q in qrels if q in data.queries and qrels[q])
        if max_queries is not None and 0 < max_queries < len(qids):
            qids = sorted(random.Random(seed).sample(qids, max_queries))
        if not qids:
            raise ConfigError(f"dataset {data.name!r}: the {split!r} split has no judged query "
                              "to evaluate")
        self.qids = qids
        self.qrels = {q: dict(qrels[q]) for q in qids}
        self.doc_ids = list(data.corpus)
        self.run: dict[str, dict[str, float]] = {}
        self.per_query: dict[str, dict[str, float]] = {}
        self.timings: dict[str, float] = {}

    def _embed(self, embed: EmbedFn, texts: list[str]) -> np.ndarray:
        parts = [embed(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def __call__(self, embed_queries: EmbedFn, embed_docs: EmbedFn, prefix: str) -> dict[str, float]:
        """Evaluate the encoder behind the two embed functions; keys start with ``prefix``."""
        t0 = time.perf_counter()
        q_emb = self._embed(embed_queries, [self.data.queries[q] for q in self.qids])
        t1 = time.perf_counter()
        d_emb = self._embed(embed_docs, [self.data.doc_text(d) for d in self.doc_ids])
        t2 = time.perf_counter()
        doc_index = DocIndex(d_emb, backend=self.backend, index=self.index, device=self.device)
        scores, idx = doc_index.search(q_emb, self.k)
        t3 = time.perf_counter()
        self.run = {
            q: {self.doc_ids[j]: float(s) for s, j in zip(srow, irow) if j >= 0}
            for q, srow, irow in zip(self.qids, scores, idx)
        }
        mean, self.per_query = evaluate_run(self.qrels, self.run)
        t4 = time.perf_counter()
        self.timings = {"embed_queries": t1 - t0, "embed_corpus": t2 - t1, "search": t3 - t2,
                        "metrics": t4 - t3}
        log.info("%s/%s: %d queries x %d docs: %s (embed %.1fs, search %.1fs)", prefix,
                 self.data.name, len(self.qids), len(self.doc_ids),
                 ", ".join(f"{m}={v:.4f}" for m, v in mean.items()), t2 - t0, t3 - t2)
        return {f"{prefix}/{self.data.name}/{m}": v for m, v in mean.items()}
