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
from hnm.runcontext import fingerprint

# zero-shot metrics of the same starting model and evaluation are identical up to the
# numerics of the encoder pass (bf16 vs fp32 moves nDCG@10 by well under this)
ZERO_SHOT_TOL = 0.001


def _name(i: int, g: Group) -> str:
    return f"group {i + 1} ({g.label})"


def _queries(run: RunRecord, stage: str, dataset: str) -> str | None:
    """The fingerprint of the queries a run evaluated (``context.json``'s ``eval_fp`` is the
    same fingerprint): from its per-query ids, else its context; None when it has neither."""
    pq = run.per_query(stage, dataset)
    if pq is not None:
        return fingerprint(sorted(pq))
    if stage == FINAL and run.context.get("dataset") == dataset and run.context.get("eval_fp"):
        return str(run.context["eval_fp"])
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
        ref_run = next((r for r in base.runs if _queries(r, stage, dataset)), None)
        ref = _queries(ref_run, stage, dataset) if ref_run is not None else None
        for i, g in enumerate(groups):
            for run in g.runs:
                mine = _queries(run, stage, dataset)
                if ref is None or mine is None or mine == ref:
                    continue
                pq, ref_pq = run.per_query(stage, dataset), ref_run.per_query(stage, dataset)
                detail = (f" ({len(pq)} vs {len(ref_pq)} queries)" if pq is not None and
                          ref_pq is not None else "")
                raise ConfigError(
                    f"{_name(i, g)}: run {run.path} was evaluated on other {dataset} queries "
                    f"than the baseline's run {ref_run.path}{detail}; compare runs "
                    "evaluated alike (the same eval.evaluator.max_queries and seed)")


def unchecked_queries(groups: Sequence[Group], stage: str = FINAL) -> list[str]:
    """Runs whose evaluated queries cannot be checked (no per-query file, no context)."""
    return [str(r.path) for g in groups for r in g.runs for d in r.datasets(stage)
            if _queries(r, stage, d) is None]


def _seed_warnings(groups: Sequence[Group], baseline: int) -> list[str]:
    base = sorted(str(r.seed) for r in groups[baseline].runs)
    out, twice = [], []
    for i, g in enumerate(groups):
        mine = sorted(str(r.seed) for r in g.runs)
        if len(set(mine)) < len(mine):
            twice.append(f"  {_name(i, g)}: seeds {', '.join(mine)}")
        if i != baseline and mine != base:
            out.append(f"  {_name(i, g)}: seeds {', '.join(mine)}; baseline: {', '.join(base)}")
    lines = []
    if out:
        lines += ["WARNING: seed sets differ from the baseline's, so runs are not paired by "
                  "seed; train every group with the same seeds:", *out]
    if twice:
        lines += ["WARNING: a seed repeats within a group (the same run twice, or runs that "
                  "differ in a key hnm compare ignores): they count as separate seeds:", *twice]
    return lines


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


def _context_warnings(groups: Sequence[Group], baseline: int) -> list[str]:
    """Other starting weights than the baseline's, and learning curves measured on other
    validation subsets (curves of different subsets are not comparable)."""
    base_fp = {r.context.get("encoder_fp") for r in groups[baseline].runs} - {None}
    enc = [f"  {_name(i, g)}: {r.path}" for i, g in enumerate(groups) for r in g.runs
           if i != baseline and base_fp and r.context.get("encoder_fp")
           and r.context["encoder_fp"] not in base_fp]
    curves = {r.context.get("val_fp") for g in groups for r in g.runs} - {None}
    out = []
    if enc:
        out += ["WARNING: runs started from other encoder weights than the baseline's:", *enc]
    if len(curves) > 1:
        out += ["WARNING: the learning curves were measured on different validation subsets "
                "(eval.val_split, val_queries, val_corpus or the evaluator's seed differ): "
                "curves of different subsets are not comparable"]
    return out


def comparability_warnings(groups: Sequence[Group], baseline: int, metric: str = "ndcg@10",
                           zero_shot_tol: float = ZERO_SHOT_TOL, stage: str = FINAL
                           ) -> list[str]:
    """Every warning, as lines (each warning a header line and indented details)."""
    out = _seed_warnings(groups, baseline)
    out += _context_warnings(groups, baseline)
    unchecked = unchecked_queries(groups, stage)
    if unchecked:
        out += ["WARNING: the evaluated queries of these runs cannot be checked against the "
                "baseline's (no per-query file, no context.json):",
                *[f"  {p}" for p in unchecked[:5]], *(["  …"] if len(unchecked) > 5 else [])]
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
