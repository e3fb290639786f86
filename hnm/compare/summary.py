"""The comparison itself: per group and dataset, metrics over seeds and a paired test per query
against the baseline group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hnm.compare.grouping import Group
from hnm.compare.stats import PairedResult, mean_std, paired_test, seed_mean
from hnm.report import METRICS, POISON_METRICS


@dataclass
class SummaryRow:
    """One group on one dataset.

    Attributes:
        number: the group's 1-based number (``--baseline`` accepts it).
        group: the group.
        dataset: dataset name of the metric keys.
        metrics: metric key (``test/ndcg@10``, ``zero_shot/ndcg@10``) -> (mean, std) over seeds.
        seeds: runs in the group with this dataset's metrics.
        baseline: whether this is the baseline group.
        paired: the paired test of the main metric against the baseline (None for the baseline
            itself or where a per-query file is missing).
        note: why there is no test, if there is none.
    """

    number: int
    group: Group
    dataset: str
    metrics: dict[str, tuple[float, float]]
    seeds: int
    baseline: bool
    paired: PairedResult | None = None
    note: str = ""


def metric_columns(groups: Sequence[Group], stage: str, metric: str) -> list[str]:
    """``{stage}/{m}`` for the standard metrics (and ``metric``) the runs have, the poisoning
    probe's where runs have them, then the zero-shot value of ``metric`` when present."""
    names = list(dict.fromkeys([metric, *METRICS, *POISON_METRICS]))
    have = {k.split("/")[0] + "/" + k.split("/")[-1] for g in groups for r in g.runs
            for k in r.metrics if k.count("/") == 2}
    cols = [f"{stage}/{m}" for m in names if f"{stage}/{m}" in have]
    if stage != "zero_shot" and f"zero_shot/{metric}" in have:
        cols.append(f"zero_shot/{metric}")
    return cols


def _per_query(group: Group, stage: str, dataset: str, metric: str) -> dict[str, float] | None:
    runs = [r.per_query(stage, dataset) for r in group.runs if dataset in r.datasets(stage)]
    if not runs or any(pq is None for pq in runs):
        return None
    return seed_mean([{q: v[metric] for q, v in pq.items() if metric in v}
                      for pq in runs if pq is not None])


def summarize(groups: Sequence[Group], baseline: int, stage: str = "test",
              metric: str = "ndcg@10", n_resamples: int = 10_000, seed: int = 0
              ) -> list[SummaryRow]:
    """Rows per dataset (in name order) and group (in order), with paired tests.

    Per-query values are first averaged over each group's seeds, then paired by query id
    between the group and the baseline (see :func:`hnm.compare.stats.paired_test`).
    """
    columns = metric_columns(groups, stage, metric)
    datasets = sorted({d for g in groups for r in g.runs for d in r.datasets(stage)})
    rows = []
    for dataset in datasets:
        base_pq = _per_query(groups[baseline], stage, dataset, metric)
        for i, g in enumerate(groups):
            values: dict[str, tuple[float, float]] = {}
            for col in columns:
                st, m = col.split("/")
                found = [r.metrics[f"{st}/{dataset}/{m}"] for r in g.runs
                         if f"{st}/{dataset}/{m}" in r.metrics]
                if found:
                    values[col] = mean_std(found)
            seeds = sum(1 for r in g.runs if dataset in r.datasets(stage))
            if not seeds:
                continue
            row = SummaryRow(i + 1, g, dataset, values, seeds, baseline=i == baseline)
            if not row.baseline:
                pq = _per_query(g, stage, dataset, metric)
                if base_pq is None or pq is None:
                    row.note = "no per-query file"
                else:
                    row.paired = paired_test(base_pq, pq, n_resamples, seed)
                    if row.paired is None:
                        row.note = "under 2 common queries"
            rows.append(row)
    return rows
