"""The comparison itself: per group and dataset, metrics over seeds and, for each tested metric,
a paired per-query test against the baseline group, Holm-adjusted over the groups, with the
minimum detectable difference and the seeds that would detect the observed one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hnm.compare.grouping import Group
from hnm.compare.power import TwoLevel, holm, two_level
from hnm.compare.runs import FINAL, RunRecord, natural_key
from hnm.compare.stats import PairedResult, mean_std, paired_test, seed_mean
from hnm.report import METRICS, POISON_METRICS

# the metrics tested against the baseline and drawn in the figure, after ``--metric``
TESTED = ("ndcg@10", "recall@100", "mrr@10")


@dataclass
class MetricTest:
    """One group against the baseline on one metric of one dataset.

    Attributes:
        result: the difference with its uncertainty over queries and seeds, its p-value,
            interval, minimum detectable difference and seeds needed
            (:func:`hnm.compare.power.two_level`); None without per-query files.
        paired: the test over queries alone (paired t-test, randomisation test, bootstrap
            interval), conditional on these trained models.
        p_holm: ``result.p`` adjusted (Holm) over the groups tested on this metric and dataset.
        seed_deltas: per seed, the group's run metric minus the baseline's run of the same
            seed (``paired_seeds``), else minus the baseline's mean over seeds.
        note: why there is no test, if there is none.
    """

    metric: str
    result: TwoLevel | None = None
    paired: PairedResult | None = None
    p_holm: float | None = None
    seed_deltas: list[float] = field(default_factory=list)
    paired_seeds: bool = False
    note: str = ""


@dataclass
class SummaryRow:
    """One group on one dataset.

    Attributes:
        number: the group's 1-based number (``--baseline`` accepts it).
        metrics: column (``final/ndcg@10``, ``zero_shot/ndcg@10``) -> (mean, std) over seeds.
        seeds: the seeds of the group's runs with this dataset's metrics.
        tests: metric -> its test against the baseline (empty for the baseline itself).
        note: why there is no test of the main metric, if there is none.
    """

    number: int
    group: Group
    dataset: str
    metrics: dict[str, tuple[float, float]]
    seeds: list
    baseline: bool
    tests: dict[str, MetricTest] = field(default_factory=dict)
    note: str = ""

    @property
    def paired(self) -> PairedResult | None:
        """The main metric's test over queries (the first tested metric)."""
        first = next(iter(self.tests.values()), None)
        return first.paired if first is not None else None


def tested_metrics(metric: str) -> list[str]:
    """``metric`` first, then nDCG@10, Recall@100 and MRR@10."""
    return list(dict.fromkeys([metric, *TESTED]))


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


def per_run(runs: Sequence[RunRecord], stage: str, dataset: str, metric: str
            ) -> list[dict[str, float]] | None:
    """Per run, query id -> ``metric``; None when a run lacks its per-query file."""
    out = []
    for r in runs:
        if dataset not in r.datasets(stage):
            continue
        pq = r.per_query(stage, dataset)
        if pq is None:
            return None
        out.append({q: v[metric] for q, v in pq.items() if metric in v})
    return out or None


def _seed_deltas(g: Group, base: Group, key: str) -> tuple[list[float], bool]:
    """Per run of the group (in seed order), its metric minus the baseline run's of the same
    seed when both groups ran the same seeds once each, else minus the baseline's mean."""
    mine = [(str(r.seed), r.metrics[key]) for r in _ordered(g.runs) if key in r.metrics]
    theirs = [(str(r.seed), r.metrics[key]) for r in _ordered(base.runs) if key in r.metrics]
    if mine and [s for s, _ in mine] == [s for s, _ in theirs]:
        return [v - w for (_, v), (_, w) in zip(mine, theirs)], True
    ref = sum(v for _, v in theirs) / len(theirs) if theirs else math.nan
    return [v - ref for _, v in mine], False


def _ordered(runs: Sequence[RunRecord]) -> list[RunRecord]:
    return sorted(runs, key=lambda r: natural_key(str(r.seed)))


def _test(g: Group, base: Group, stage: str, dataset: str, metric: str, n_resamples: int,
          seed: int) -> MetricTest:
    t = MetricTest(metric)
    t.seed_deltas, t.paired_seeds = _seed_deltas(g, base, f"{stage}/{dataset}/{metric}")
    mine, theirs = _ordered(g.runs), _ordered(base.runs)
    runs = per_run(mine, stage, dataset, metric)
    base_runs = per_run(theirs, stage, dataset, metric)
    if base_runs is None or runs is None:
        t.note = "no per-query file"
        return t
    same_seeds = [str(r.seed) for r in mine] == [str(r.seed) for r in theirs]
    t.result = two_level(runs, base_runs, paired=same_seeds)
    t.paired = paired_test(seed_mean(base_runs), seed_mean(runs), n_resamples, seed)
    if t.result is None:
        t.note = "under 2 common queries"
    return t


def summarize(groups: Sequence[Group], baseline: int, stage: str = FINAL,
              metric: str = "ndcg@10", n_resamples: int = 10_000, seed: int = 0
              ) -> list[SummaryRow]:
    """Rows per dataset (in name order) and group (in order), with paired tests.

    Per-query values are first averaged over each group's seeds, then paired by query id
    between the group and the baseline (see :func:`hnm.compare.stats.paired_test`); the
    t-test's p-values are Holm-adjusted over the groups, per dataset and metric.
    """
    columns = metric_columns(groups, stage, metric)
    datasets = sorted({d for g in groups for r in g.runs for d in r.datasets(stage)})
    base = groups[baseline]
    rows = []
    for dataset in datasets:
        ds_rows = []
        for i, g in enumerate(groups):
            values: dict[str, tuple[float, float]] = {}
            zero_shot = [f"zero_shot/{m}" for m in tested_metrics(metric)]
            for col in dict.fromkeys([*columns, *zero_shot]):
                st, m = col.split("/")
                found = [r.metrics[f"{st}/{dataset}/{m}"] for r in g.runs
                         if f"{st}/{dataset}/{m}" in r.metrics]
                if found:
                    values[col] = mean_std(found)
            seeds = [r.seed for r in g.runs if dataset in r.datasets(stage)]
            if not seeds:
                continue
            row = SummaryRow(i + 1, g, dataset, values, seeds, baseline=i == baseline)
            if not row.baseline:
                row.tests = {m: _test(g, base, stage, dataset, m, n_resamples, seed)
                             for m in tested_metrics(metric)
                             if any(f"{stage}/{dataset}/{m}" in r.metrics for r in g.runs)}
                first = next(iter(row.tests.values()), None)
                row.note = first.note if first is not None else "no such metric"
            ds_rows.append(row)
        for m in tested_metrics(metric):
            tests = [r.tests[m] for r in ds_rows if m in r.tests]
            adjusted = holm([t.result.p if t.result else None for t in tests])
            for t, p in zip(tests, adjusted):
                t.p_holm = p
        rows += ds_rows
    return rows
