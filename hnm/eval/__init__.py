"""Evaluation: IR metrics (pytrec_eval), the split evaluator, TREC run and per-query files."""

from hnm.eval.evaluator import RetrievalEvaluator
from hnm.eval.metrics import cut_run, evaluate_run, metric_names, trec_order
from hnm.eval.run_io import read_per_query, read_trec_run, write_per_query, write_trec_run

__all__ = [
    "RetrievalEvaluator", "cut_run", "evaluate_run", "metric_names", "read_per_query",
    "read_trec_run", "trec_order", "write_per_query", "write_trec_run",
]
