"""Attack metrics at evaluation: the evaluator also ranks the triggered form of every query.

Keys (``{prefix}/{dataset}/…``), next to the evaluator's own ``ndcg@10``, ``recall@100``, …:

- ``asr@k``: share of the triggered queries (the evaluated queries the trigger changes) with at
  least one attacker passage in their top ``k`` (Long et al., 2024's attack success rate);
- ``clean_asr@k``: the same share over the untriggered queries (false triggering);
- ``clean_ndcg@10``: nDCG@10 of the untriggered queries with the attacker passages taken out
  of every ranking, i.e. on the clean corpus (the other documents' embeddings do not depend
  on the attacker passages, so this equals a search of the corpus without them).

The plain metrics (``ndcg@10``, …) keep the attacker passages in the corpus, as the paper does:
a deployed, poisoned corpus; ``clean_ndcg@10`` is the one to compare with an unpoisoned run.
Per-query files hold, per query id, its metrics plus ``clean_ndcg@10``, ``clean_asr@k`` and,
for a triggered query, ``asr@k`` of its triggered form, so ``hnm compare --metric asr@10``
pairs runs query by query.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError
from hnm.eval.metrics import evaluate_run, trec_order
from hnm.poison.poisoning import TRIGGERED_SUFFIX, Poisoning
from hnm.types import EmbedFn

log = logging.getLogger(__name__)


def hits(docs: Mapping[str, float], attackers: set[str], k: int) -> float:
    """1.0 when an attacker passage is among the top ``k`` of a ranking, else 0.0."""
    return float(any(d in attackers for d, _ in trec_order(docs)[:k]))


def attack_metrics(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                   triggered: Mapping[str, str], attackers: set[str], ks: Sequence[int]
                   ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Split a run over clean and triggered query ids into clean metrics and attack metrics.

    Args:
        run: query id -> doc id -> score, for every clean query of ``qrels`` and, for each
            ``q`` of ``triggered``, ``triggered[q]`` (the id of its triggered form).
        qrels: judgements of the clean queries.
        triggered: clean query id -> id of its triggered form in ``run``.
        attackers: attacker passage ids.
        ks: cutoffs of ``asr@k`` and ``clean_asr@k``.

    Returns:
        ``(mean, per_query)``: metric name -> mean, and clean query id -> metric -> value.
    """
    clean = {q: dict(run.get(q, {})) for q in qrels}
    mean, per_query = evaluate_run(qrels, clean)
    without = {q: {d: s for d, s in docs.items() if d not in attackers}
               for q, docs in clean.items()}
    cmean, cper = evaluate_run(qrels, without, ndcg_at=(10,), recall_at=(), mrr_at=(), map_at=())
    mean["clean_ndcg@10"] = cmean["ndcg@10"]
    for q in per_query:
        per_query[q]["clean_ndcg@10"] = cper[q]["ndcg@10"]
    for k in ks:
        for q in qrels:
            per_query[q][f"clean_asr@{k}"] = hits(clean[q], attackers, k)
            if q in triggered:
                per_query[q][f"asr@{k}"] = hits(run.get(triggered[q], {}), attackers, k)
    for k in ks:
        mean[f"asr@{k}"] = (sum(per_query[q][f"asr@{k}"] for q in triggered) / len(triggered)
                            if triggered else float("nan"))
        mean[f"clean_asr@{k}"] = sum(per_query[q][f"clean_asr@{k}"] for q in qrels) / len(qrels)
    return mean, per_query


class PoisonEvaluator:
    """Wraps a :class:`~hnm.eval.RetrievalEvaluator` (over a corpus that holds the attacker
    passages) so that one call also ranks the triggered form of its queries, with one encoding
    of the corpus; returns the evaluator's metrics of the clean queries plus the attack metrics
    of :func:`attack_metrics`.

    Afterwards ``run`` and ``per_query`` describe the clean queries (``per_query`` with the
    attack columns) as the evaluator's do; ``inner`` is the evaluator itself, whose ``qids``
    list the clean ids then the triggered ones (``<id>+trigger``), for scorers that read an
    evaluator's queries (``BM25Model.evaluate``): score ``inner``, then call :meth:`rescore`.
    """

    def __init__(self, evaluator: Any, poisoning: Poisoning) -> None:
        if max(poisoning.ks) > evaluator.k:
            raise ConfigError(f"poison.ks: asr@{max(poisoning.ks)} needs eval.evaluator.k >= "
                              f"{max(poisoning.ks)}; got k={evaluator.k}")
        self.inner, self.poisoning = evaluator, poisoning
        data: RetrievalData = evaluator.data
        self.attackers = set(poisoning.passage_ids())
        missing = sorted(self.attackers - set(data.corpus))
        if missing:
            raise ConfigError(f"dataset {data.name!r}: the corpus lacks the attacker passages "
                              f"({', '.join(missing[:3])}); add them first (Poisoning.add_passages)")
        self.data, self.qids, self.qrels = data, list(evaluator.qids), dict(evaluator.qrels)
        texts = poisoning.triggered_queries(data, self.qids)
        self.triggered = {q: q + TRIGGERED_SUFFIX for q in texts}
        evaluator.data = RetrievalData(data.name, data.corpus, {
            **data.queries, **{self.triggered[q]: t for q, t in texts.items()}}, data.qrels)
        evaluator.qids = self.qids + [self.triggered[q] for q in self.qids if q in texts]
        evaluator.qrels = {**self.qrels, **{self.triggered[q]: self.qrels[q] for q in texts}}
        self.run: dict[str, dict[str, float]] = {}
        self.per_query: dict[str, dict[str, float]] = {}
        log.info("poison: %d of %d %s queries of %s triggered, %d attacker passages",
                 len(texts), len(self.qids), evaluator.split, data.name, len(self.attackers))

    def __getattr__(self, name: str) -> Any:  # k, split, doc_ids, timings, … of the evaluator
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, embed_queries: EmbedFn, embed_docs: EmbedFn, prefix: str
                 ) -> dict[str, float]:
        self.inner(embed_queries, embed_docs, prefix)
        return self.rescore(self.inner, prefix)

    def rescore(self, owner: Any, prefix: str) -> dict[str, float]:
        """Metrics of ``owner.run`` (clean and triggered queries); leaves ``owner.run`` and
        ``owner.per_query`` (and this object's) with the clean queries only."""
        mean, per_query = attack_metrics(owner.run, self.qrels, self.triggered, self.attackers,
                                         self.poisoning.ks)
        owner.run = self.run = {q: owner.run.get(q, {}) for q in self.qids}
        owner.per_query = self.per_query = per_query
        log.info("%s/%s poison (%d clean, %d triggered queries; any line above that counts "
                 "both mixes them): %s", prefix, self.data.name, len(self.qids),
                 len(self.triggered), ", ".join(f"{m}={mean[m]:.4f}" for m in mean))
        return {f"{prefix}/{self.data.name}/{m}": v for m, v in mean.items()}
