"""IR metrics of a run against graded judgements, computed by ``pytrec_eval`` (trec_eval).

Metric names and their trec_eval measures:

- ``ndcg@k``: ``ndcg_cut_k``, graded gains (linear, as trec_eval), ideal from all judgements.
- ``recall@k``: ``recall_k``, relevant = relevance > 0.
- ``mrr@k``: ``recip_rank`` on the run cut to its top ``k`` (trec_eval has no cut for it).
- ``map@k``: ``map_cut_k``, divided by all relevant documents of the query.

trec_eval orders a run by score descending and equal scores by document id *descending*; the
MRR cut uses the same order so that all metrics see the same ranking. The mean is taken over
every query of ``qrels``: a query the run leaves out (which trec_eval skips) scores 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytrec_eval

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_NDCG = (10,)
DEFAULT_RECALL = (100,)
DEFAULT_MRR = (10,)
DEFAULT_MAP = (100,)


def trec_order(docs: Mapping[str, float]) -> list[tuple[str, float]]:
    """A query's results in trec_eval's order: score descending, then document id descending."""
    return sorted(((d, float(s)) for d, s in docs.items()), key=lambda x: (x[1], x[0]),
                  reverse=True)


def cut_run(run: Run, k: int) -> dict[str, dict[str, float]]:
    """Keep each query's top ``k`` results (in trec_eval's order)."""
    return {q: dict(trec_order(docs)[:k]) for q, docs in run.items()}


def metric_names(ndcg_at: Sequence[int] = DEFAULT_NDCG, recall_at: Sequence[int] = DEFAULT_RECALL,
                 mrr_at: Sequence[int] = DEFAULT_MRR, map_at: Sequence[int] = DEFAULT_MAP
                 ) -> list[str]:
    """The metric names :func:`evaluate_run` returns for these cutoffs, in order."""
    return ([f"ndcg@{k}" for k in ndcg_at] + [f"recall@{k}" for k in recall_at]
            + [f"mrr@{k}" for k in mrr_at] + [f"map@{k}" for k in map_at])


def evaluate_run(qrels: Qrels, run: Run, ndcg_at: Sequence[int] = DEFAULT_NDCG,
                 recall_at: Sequence[int] = DEFAULT_RECALL, mrr_at: Sequence[int] = DEFAULT_MRR,
                 map_at: Sequence[int] = DEFAULT_MAP
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score a run against judgements.

    Args:
        qrels: query id -> document id -> graded relevance (> 0 is relevant).
        run: query id -> document id -> score (higher is better). Queries absent from
            ``qrels`` are ignored.
        ndcg_at, recall_at, mrr_at, map_at: cutoffs of each metric.

    Returns:
        ``(mean, per_query)``: metric name (``ndcg@10``, ``recall@100``, ``mrr@10``,
        ``map@100``, ...) -> mean over all ``qrels`` queries, and query id -> metric -> value.
    """
    if not qrels:
        raise ValueError("cannot evaluate against empty qrels")
    judged = {q: {d: int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    present = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items()
               if q in judged and docs}
    names = metric_names(ndcg_at, recall_at, mrr_at, map_at)
    per_query = {q: dict.fromkeys(names, 0.0) for q in judged}
    if present:
        measures = {f"ndcg_cut.{','.join(map(str, ndcg_at))}" if ndcg_at else "",
                    f"recall.{','.join(map(str, recall_at))}" if recall_at else "",
                    f"map_cut.{','.join(map(str, map_at))}" if map_at else ""} - {""}
        if measures:
            res = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(present)
            for q, vals in res.items():
                row = per_query[q]
                row.update({f"ndcg@{k}": vals[f"ndcg_cut_{k}"] for k in ndcg_at})
                row.update({f"recall@{k}": vals[f"recall_{k}"] for k in recall_at})
                row.update({f"map@{k}": vals[f"map_cut_{k}"] for k in map_at})
        for k in mrr_at:
            rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(
                cut_run(present, k))
            for q, vals in rr.items():
                per_query[q][f"mrr@{k}"] = vals["recip_rank"]
    mean = {m: sum(row[m] for row in per_query.values()) / len(per_query) for m in names}
    return mean, per_query
