"""BM25 as a baseline "model" of ``hnm eval`` (``model=bm25``)."""

from __future__ import annotations

import logging
import time

import numpy as np

from hnm.data.dataset import RetrievalData
from hnm.errors import check_choice, check_range
from hnm.eval.metrics import evaluate_run

log = logging.getLogger(__name__)

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")


class BM25Model:
    """Lexical retrieval with BM25 (``bm25s``), scored like a dense model by ``hnm eval``.

    Queries and documents (``title: text``) are lowercased and split into word tokens by
    ``token_pattern`` (default ``[^\\W_]+``: runs of letters and digits, so ``get_value``
    gives ``get`` and ``value``); the corpus is indexed once per dataset with ``bm25s`` (Lù,
    2024, "BM25S: Orders of magnitude faster lexical search via eager sparse scoring") using
    Robertson & Zaragoza's BM25 in the chosen variant. Documents scoring 0 (no word in common)
    are not retrieved.

    Args:
        k1, b: term-frequency saturation and length normalisation.
        method: BM25 variant, one of ``lucene`` (default), ``robertson``, ``atire``,
            ``bm25l``, ``bm25+``.
        token_pattern: regular expression of a token.
        stopwords: ``null`` (keep every word, default) or a bm25s stop-word list name
            (``english``).

    On ``stdlib_code`` (test split, 760 queries) the defaults give nDCG@10 0.449 and
    Recall@100 0.809; ``stopwords=english`` gives 0.500 / 0.870. Use it as the lexical
    baseline row next to dense models, or to check a dataset's difficulty.
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = "lucene",
                 token_pattern: str = r"[^\W_]+", stopwords: str | None = None) -> None:
        check_choice("bm25.method", method, METHODS)
        check_range("bm25.k1", k1, 0.0)
        check_range("bm25.b", b, 0.0, 1.0)
        self.k1, self.b, self.method = float(k1), float(b), method
        self.token_pattern, self.stopwords = token_pattern, stopwords
        self.run: dict[str, dict[str, float]] = {}
        self.per_query: dict[str, dict[str, float]] = {}

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        return bm25s.tokenize(texts, lower=True, token_pattern=self.token_pattern,
                              stopwords=self.stopwords, return_ids=False, show_progress=False)

    def retrieve(self, data: RetrievalData, qids: list[str], doc_ids: list[str], k: int
                 ) -> dict[str, dict[str, float]]:
        """The top ``k`` documents of each query: query id -> doc id -> BM25 score (> 0)."""
        import bm25s

        corpus = self._tokenize([data.doc_text(d) for d in doc_ids])
        queries = self._tokenize([data.queries[q] for q in qids])
        index = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        index.index(corpus, show_progress=False)
        vocab = set(index.vocab_dict)
        queries = [[t for t in q if t in vocab] for q in queries]
        run: dict[str, dict[str, float]] = {q: {} for q in qids}
        todo = [i for i, q in enumerate(queries) if q]
        if todo:
            idx, scores = index.retrieve([queries[i] for i in todo], k=min(k, len(doc_ids)),
                                         show_progress=False)
            for i, row, srow in zip(todo, np.asarray(idx), np.asarray(scores)):
                run[qids[i]] = {doc_ids[j]: float(s) for j, s in zip(row, srow) if s > 0}
        return run

    def evaluate(self, evaluator, prefix: str) -> dict[str, float]:
        """Score BM25 on an evaluator's queries, corpus, depth and judgements, like
        ``evaluator(embed, embed, prefix)`` does for a dense model; afterwards ``run`` and
        ``per_query`` hold the results (as on the evaluator)."""
        t0 = time.perf_counter()
        self.run = self.retrieve(evaluator.data, evaluator.qids, evaluator.doc_ids, evaluator.k)
        mean, self.per_query = evaluate_run(evaluator.qrels, self.run)
        name = evaluator.data.name
        log.info("%s/%s (bm25): %d queries x %d docs: %s (%.1fs)", prefix, name,
                 len(evaluator.qids), len(evaluator.doc_ids),
                 ", ".join(f"{m}={v:.4f}" for m, v in mean.items()), time.perf_counter() - t0)
        return {f"{prefix}/{name}/{m}": v for m, v in mean.items()}
