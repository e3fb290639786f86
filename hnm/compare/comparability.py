"""Can these groups be compared at all, and under which caveats?

Refused (:func:`refuse_incomparable`, exit 2): groups evaluated on different splits, on
different datasets, or on different query subsets of a dataset: their differences would be the
evaluation's, not the strategies'. Warned (:func:`comparability_warnings`, in the terminal and
in ``compare.md``): different seed sets (runs are then not paired by seed), zero-shot metrics
that differ by more than evaluation noise (the groups did not start from the same model or were
not scored alike), other training pairs or another corpus than the baseline's at the same
seed, config values outside the strategy sections, and a different exposure (pairs, steps).
"""

from __future__ import annotations

from collections.abc import Sequence

from hnm.compare.conditions import condition_differences, exposure_differences
from hnm.compare.grouping import Group
from hnm.compare.runs import FINAL, RunRecord
from hnm.errors import ConfigError

# zero-shot metrics of the same starting model and evaluation are identical up to the
# numerics of the encoder pass (bf16 vs fp32 moves nDCG@10 by well under this)
ZERO_SHOT_TOL = 0.001


def _name(i: int, g: Group) -> str:
    return f"group {i + 1} ({g.label})"


def _queries(run: RunRecord, stage: str, dataset: str) -> tuple[str, object] | None:
    """What identifies the queries a run evaluated: its per-query ids, else its context's
    fingerprint (runs that have neither cannot be checked)."""
    pq = run.per_query(stage, dataset)
    if pq is not None:
        return "ids", frozenset(pq)
    if run.context.get("dataset") == dataset and run.context.get("eval_fp"):
        return "fp", run.context["eval_fp"]
    return None


def refuse_incomparable(groups: Sequence[Group], baseline: int, stage: str = FINAL) -> None:
    """Raise :class:`ConfigError` (one paragraph, what differs) when the groups were evaluated
    on different splits, datasets or query subsets."""
    splits = {(i, g.label): sorted({r.split for r in g.runs}) for i, g in enumerate(groups)}
    if len({s for v in splits.values() for s in v}) > 1:
        listed = "; ".join(f"{_name(i, g)}: {', '.join(splits[(i, g.label)])}"
                           for i, g in enumerate(groups))
        raise ConfigError("the runs were evaluated on different splits, so their metrics are "
                          f"not comparable: {listed}. Compare runs of one split (Optuna trials "
                          "evaluate on dev; report runs evaluate on data.eval_split=test).")
    base = groups[baseline]
    base_sets = {d for r in base.runs for d in r.datasets(stage)}
    for i, g in enumerate(groups):
        mine = {d for r in g.runs for d in r.datasets(stage)}
        if mine != base_sets:
            raise ConfigError(f"{_name(i, g)} was evaluated on {', '.join(sorted(mine)) or 'no'}"
                              f" dataset(s), the baseline on {', '.join(sorted(base_sets))}; "
                              "compare groups evaluated on the same datasets")
    for dataset in sorted(base_sets):
        ref_run = base.runs[0]
        ref = _queries(ref_run, stage, dataset)
        for i, g in enumerate(groups):
            for run in g.runs:
                mine = _queries(run, stage, dataset)
                if ref is None or mine is None or mine[0] != ref[0] or mine == ref:
                    continue
                detail = (f"{len(mine[1])} vs {len(ref[1])} queries"  # type: ignore[arg-type]
                          if mine[0] == "ids" else "another query set")
                raise ConfigError(
                    f"{_name(i, g)}: run {run.path} was evaluated on other {dataset} queries "
                    f"than the baseline's run {ref_run.path} ({detail}); compare runs "
                    "evaluated alike (the same eval.evaluator.max_queries and seed)")


def _seed_warnings(groups: Sequence[Group], baseline: int) -> list[str]:
    base = sorted({str(r.seed) for r in groups[baseline].runs})
    out = []
    for i, g in enumerate(groups):
        mine = sorted({str(r.seed) for r in g.runs})
        if i != baseline and mine != base:
            out.append(f"  {_name(i, g)}: seeds {', '.join(mine)}; baseline: {', '.join(base)}")
    if not out:
        return []
    return ["WARNING: seed sets differ from the baseline's, so runs are not paired by seed and "
            "seed-to-seed variation is part of each Δ; train every group with the same seeds:",
            *out]


def _zero_shot_warnings(groups: Sequence[Group], baseline: int, metric: str,
                        tol: float) -> list[str]:
    def means(g: Group) -> dict[str, float]:
        found: dict[str, list[float]] = {}
        for r in g.runs:
            for k, v in r.metrics.items():
                if k.startswith("zero_shot/") and k.endswith(f"/{metric}"):
                    found.setdefault(k.split("/")[1], []).append(v)
        return {d: sum(v) / len(v) for d, v in found.items()}

    base = means(groups[baseline])
    out = []
    for i, g in enumerate(groups):
        for dataset, value in means(g).items():
            ref = base.get(dataset)
            if i != baseline and ref is not None and abs(value - ref) > tol:
                out.append(f"  {_name(i, g)}: zero-shot {dataset} {metric} {value:.4f}; "
                           f"baseline {ref:.4f}")
    if not out:
        return []
    return [f"WARNING: zero-shot {metric} differs from the baseline's by more than evaluation "
            f"noise ({tol:g}): the groups did not start from the same model or were not "
            "evaluated alike, and that difference is part of each Δ:", *out]


def _data_warnings(groups: Sequence[Group], baseline: int) -> list[str]:
    base = {str(r.seed): r.context for r in groups[baseline].runs if r.context}
    out = []
    for i, g in enumerate(groups):
        if i == baseline:
            continue
        for r in g.runs:
            ref = base.get(str(r.seed))
            if not r.context or ref is None:
                continue
            for key, what in (("train_fp", "training pairs"), ("corpus_fp", "corpus")):
                if r.context.get(key) and ref.get(key) and r.context[key] != ref[key]:
                    out.append(f"  {_name(i, g)}: seed {r.seed}: other {what} than the "
                               f"baseline's run of that seed ({r.path})")
    if not out:
        return []
    return ["WARNING: groups trained on other data than the baseline at the same seed:", *out]


def comparability_warnings(groups: Sequence[Group], baseline: int, metric: str = "ndcg@10",
                           zero_shot_tol: float = ZERO_SHOT_TOL) -> list[str]:
    """Every warning, as lines (each warning a header line and indented details)."""
    out = _seed_warnings(groups, baseline)
    out += _zero_shot_warnings(groups, baseline, metric, zero_shot_tol)
    out += _data_warnings(groups, baseline)
    diffs = condition_differences(groups, baseline)
    if diffs:
        out.append("WARNING: groups differ from the baseline in conditions, not only in "
                   "strategy; their differences are not the strategies' alone:")
        out += [f"  {d.line()}" for d in diffs]
    exposure = exposure_differences(groups, baseline)
    if exposure:
        out.append("WARNING: groups trained on a different amount of data than the baseline "
                   "(exposure differs):")
        out += [f"  {line}" for line in exposure]
    return out
