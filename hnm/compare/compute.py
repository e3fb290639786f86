"""What each group cost: optimizer steps, training pairs, texts encoded with gradient, texts its
strategy ran through a model without gradient (counted whether encoded or served from the
embedding cache, so a sweep's job order does not change a strategy's cost), fit and total
seconds, CPU seconds, and the load other jobs put on the machine meanwhile.

Wall times come from different moments and maybe machines: the table says so (a caveat line)
when the runs ran under different load or on different CPUs, and then ``fit × baseline`` is a
rough guide, not a benchmark; the text counts do not depend on the machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hnm.compare.conditions import values
from hnm.compare.grouping import Group

# (column, metrics.json key, digits); a key missing from every run drops its column. "Texts"
# count texts and, for cross-encoders (AR2's ranker, guides, teachers), (query, doc) pairs
COLUMNS = (("steps", "train/steps", 0), ("pairs", "train/pairs", 0),
           ("texts w/ grad", "compute/texts_with_grad", 0),
           ("no-grad texts (strategy)", "compute/nograd_texts_strategy", 0),
           ("no-grad texts (eval)", "compute/nograd_texts_eval", 0),
           ("fit s", "time/fit_s", 1), ("total s", "time/total_s", 1),
           ("cpu s", "compute/cpu_s", 1), ("other load", "compute/other_load", 2))
# other jobs' load (runnable processes) above which, or a difference in which between
# groups, wall-time ratios are not comparable
LOAD_TOL = 0.5


@dataclass
class ComputeTable:
    """``headers`` and ``rows`` (strings), ``numbers`` (group -> column -> mean or NaN) and the
    ``caveat`` line (None when the wall times are comparable)."""

    headers: list[str]
    rows: list[list[str]]
    numbers: list[dict[str, float]]
    caveat: str | None


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _cpus(g: Group) -> set[str]:
    """The processors the group's runs ran on (GPU when one was used, else CPU model)."""
    out = set()
    for r in g.runs:
        m = r.context.get("machine")
        if isinstance(m, dict) and (m.get("gpu") or m.get("cpu")):
            out.add(str(m.get("gpu") or m.get("cpu")))
    return out


def caveat(groups: Sequence[Group]) -> str | None:
    """Why the wall times are not a benchmark, or None."""
    if not any(values(g, "time/fit_s") for g in groups):
        return None  # no wall times to compare
    loads = [_mean(values(g, "compute/other_load")) for g in groups]
    cpus = set().union(*(_cpus(g) for g in groups))
    reasons = []
    if any(math.isnan(x) for x in loads):
        reasons.append("the machine's load was not recorded for every group")
    elif max(loads) > LOAD_TOL:
        reasons.append(f"other jobs loaded the machine (other load {min(loads):.2f}–"
                       f"{max(loads):.2f} runnable processes)")
    if len(cpus) > 1:
        reasons.append(f"the runs ran on different CPUs ({', '.join(sorted(cpus))})")
    if not reasons:
        return None
    return ("wall times are not comparable: " + "; ".join(reasons) + ". Read fit × baseline "
            "as a rough guide; the text counts and steps do not depend on the machine.")


def compute_table(groups: Sequence[Group], baseline: int) -> ComputeTable:
    """Per group the mean over its runs of each compute figure, and its fit time as a multiple
    of the baseline's."""
    have = [c for c in COLUMNS if any(values(g, c[1]) for g in groups)]
    headers = ["#", "group", "runs", *[c[0] for c in have]]
    base_fit = _mean(values(groups[baseline], "time/fit_s"))
    if math.isfinite(base_fit) and base_fit > 0:
        headers.append("fit × baseline")
    rows, numbers = [], []
    for i, g in enumerate(groups):
        nums = {name: _mean(values(g, key)) for name, key, _ in have}
        row = [str(i + 1), g.label, str(len(g.runs))]
        row += ["-" if math.isnan(nums[name]) else f"{nums[name]:,.{digits}f}"
                for name, _, digits in have]
        if "fit × baseline" in headers:
            ratio = nums.get("fit s", math.nan) / base_fit
            nums["fit × baseline"] = ratio
            row.append("-" if math.isnan(ratio) else f"{ratio:.2f}")
        rows.append(row)
        numbers.append(nums)
    return ComputeTable(headers, rows, numbers, caveat(groups))
