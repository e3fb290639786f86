"""The comparison itself: per group and dataset, metrics over seeds and, for each tested metric,
a paired per-query test against the baseline group, Holm-adjusted over the groups, with the
minimum detectable difference and the seeds that would detect the observed one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from hnm.compare.grouping import Group
from hnm.compare.power import holm, mde, seeds_needed
from hnm.compare.runs import FINAL, RunRecord
from hnm.compare.stats import PairedResult, mean_std, paired_test, seed_mean
from hnm.report import METRICS, POISON_METRICS

# the metrics tested against the baseline and drawn in the figure, after ``--metric``
TESTED = ("ndcg@10", "recall@100", "mrr@10")
TEST_NAME = "paired t-test"


@dataclass
class MetricTest:
    """One group against the baseline on one metric of one dataset.

    Attributes:
        paired: the paired per-query test (None: no per-query files, or too few queries).
        p_holm: ``paired.p_ttest`` adjusted (Holm) over the groups tested on this metric.
        mde: minimum detectable difference at 80% power (α = 0.05) with these seeds/queries.
        seeds_needed: seeds per group that would detect ``paired.mean_diff`` (None: see note).
        seed_deltas: per seed, the group's run metric minus the baseline's run of the same
            seed (``paired_seeds``), else minus the baseline's mean over seeds.
        note: why a figure is missing.
    """

    metric: str
    paired: PairedResult | None = None
    p_holm: float | None = None
    mde: float = float("nan")
    seeds_needed: int | None = None
    seeds_note: str = ""
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
        """The main metric's paired test (the first tested metric)."""
        first = next(iter(self.tests.values()), None)
        return first.paired if first is not None else None


def tested_metrics(metric: str) -> list[str]:
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
    mine = {r.seed: r.metrics[key] for r in g.runs if key in r.metrics}
    theirs = {r.seed: r.metrics[key] for r in base.runs if key in r.metrics}
    if mine and set(mine) == set(theirs):
        return [mine[s] - theirs[s] for s in sorted(mine, key=str)], True
    ref = sum(theirs.values()) / len(theirs) if theirs else math.nan
    return [v - ref for _, v in sorted(mine.items(), key=lambda kv: str(kv[0]))], False


def _test(g: Group, base: Group, stage: str, dataset: str, metric: str,
          base_runs: list[dict[str, float]] | None, n_resamples: int, seed: int) -> MetricTest:
    t = MetricTest(metric)
    t.seed_deltas, t.paired_seeds = _seed_deltas(g, base, f"{stage}/{dataset}/{metric}")
    runs = per_run(g.runs, stage, dataset, metric)
    if base_runs is None or runs is None:
        t.note = "no per-query file"
        return t
    a, b = seed_mean(base_runs), seed_mean(runs)
    t.paired = paired_test(a, b, n_resamples, seed)
    if t.paired is None:
        t.note = "under 2 common queries"
        return t
    import numpy as np

    common = sorted(set(a) & set(b))
    t.mde = mde(np.array([b[q] - a[q] for q in common]))
    t.seeds_needed, t.seeds_note = seeds_needed(runs, base_runs, t.paired.mean_diff)
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
        base_runs = {m: per_run(base.runs, stage, dataset, m) for m in tested_metrics(metric)}
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
                row.tests = {m: _test(g, base, stage, dataset, m, base_runs[m], n_resamples,
                                      seed) for m in tested_metrics(metric)
                             if any(f"{stage}/{dataset}/{m}" in r.metrics for r in g.runs)}
                first = next(iter(row.tests.values()), None)
                row.note = first.note if first is not None else "no such metric"
            ds_rows.append(row)
        for m in tested_metrics(metric):
            tests = [r.tests[m] for r in ds_rows if m in r.tests]
            adjusted = holm([t.paired.p_ttest if t.paired else None for t in tests])
            for t, p in zip(tests, adjusted):
                t.p_holm = p
        rows += ds_rows
    return rows
