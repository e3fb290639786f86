"""Are the groups compared under the same conditions, and what did each one cost?

A comparison of strategies is only meaningful when the groups differ in the strategy alone:
same data, encoder, dropout, batch size, schedule and evaluation, and the same exposure (the
training pairs and optimizer steps each run actually got). :func:`condition_differences` lists
every config value outside the strategy sections in which a group differs from the baseline,
:func:`exposure_differences` every group whose runs trained on a different number of pairs or
steps, and :func:`compute_rows` what each group used (steps, pairs, fit and total seconds,
texts encoded with frozen weights), with ratios to the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hnm.compare.grouping import ABSENT, Group

# what a strategy is: its own sections; a difference here is what a comparison compares
COMPARED_SECTIONS = ("sampler", "miner", "negatives", "loss", "poison")
# settings that change how a run is carried out or reported, never what it computes
NO_EFFECT = ("cache", "progress", "checkpoint", "optimize_metric", "eval.batch_size",
             "trainer.enable_progress_bar", "trainer.log_every_n_steps",
             "trainer.enable_model_summary", "module.telemetry_every", "data.leakage_check")
# metrics of exposure (must match) and of compute (reported)
EXPOSURE = ("train/pairs", "train/steps")
COMPUTE = (("steps", "train/steps"), ("pairs", "train/pairs"), ("fit s", "time/fit_s"),
           ("total s", "time/total_s"), ("frozen encodes", "cache/encoded_texts"))


def _under(key: str, sections: Sequence[str]) -> bool:
    return any(key == s or key.startswith(s + ".") for s in sections)


@dataclass
class Difference:
    """Group ``number`` (1-based) has ``value`` at ``key`` where the baseline has ``base``."""

    number: int
    label: str
    key: str
    base: object
    value: object

    def line(self) -> str:
        show = lambda v: "(absent)" if v == ABSENT else repr(v)  # noqa: E731
        return (f"group {self.number} ({self.label}): {self.key} = {show(self.value)} "
                f"(baseline: {show(self.base)})")


def condition_differences(groups: Sequence[Group], baseline: int) -> list[Difference]:
    """Config values outside the strategy sections (and outside settings without effect on
    results) in which a group differs from the baseline group."""
    base = groups[baseline].values
    out = []
    for i, g in enumerate(groups):
        if i == baseline:
            continue
        for key, value in g.values.items():
            if _under(key, COMPARED_SECTIONS) or _under(key, NO_EFFECT):
                continue
            if repr(value) != repr(base.get(key, ABSENT)):
                out.append(Difference(i + 1, g.label, key, base.get(key, ABSENT), value))
    return out


def _values(group: Group, key: str) -> list[float]:
    return [float(r.metrics[key]) for r in group.runs
            if key in r.metrics and math.isfinite(float(r.metrics[key]))]


def exposure_differences(groups: Sequence[Group], baseline: int) -> list[str]:
    """One line per group (and exposure metric) whose runs did not all get the baseline's
    number of training pairs or optimizer steps."""
    out = []
    for key in EXPOSURE:
        base = sorted(set(_values(groups[baseline], key)))
        for i, g in enumerate(groups):
            mine = sorted(set(_values(g, key)))
            if i != baseline and mine and base and mine != base:
                out.append(f"group {i + 1} ({g.label}): {key} = "
                           f"{', '.join(f'{v:g}' for v in mine)} (baseline: "
                           f"{', '.join(f'{v:g}' for v in base)})")
    return out


def compute_rows(groups: Sequence[Group], baseline: int) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): per group the mean over its runs of each compute figure, and its
    fit time as a multiple of the baseline's (timings come from different moments and maybe
    machines: a rough guide, not a benchmark)."""
    have = [(name, key) for name, key in COMPUTE if any(_values(g, key) for g in groups)]
    head = ["#", "group", "runs", *[name for name, _ in have]]
    base_fit = _values(groups[baseline], "time/fit_s")
    if base_fit:
        head.append("fit × baseline")
    rows = []
    for i, g in enumerate(groups):
        row = [str(i + 1), g.label, str(len(g.runs))]
        for name, key in have:
            vals = _values(g, key)
            row.append("-" if not vals else f"{sum(vals) / len(vals):.{1 if ' s' in name else 0}f}")
        if base_fit:
            fit = _values(g, "time/fit_s")
            ratio = (sum(fit) / len(fit)) / (sum(base_fit) / len(base_fit)) if fit else math.nan
            row.append("-" if not math.isfinite(ratio) or not sum(base_fit) else f"{ratio:.2f}")
        rows.append(row)
    return head, rows


def report_lines(groups: Sequence[Group], baseline: int) -> tuple[list[str], list[str]]:
    """(warnings, compute table as Markdown lines) for the terminal and ``compare.md``."""
    warnings = []
    diffs = condition_differences(groups, baseline)
    if diffs:
        warnings.append("WARNING: groups differ from the baseline in conditions, not only in "
                        "strategy; their differences are not the strategies' alone:")
        warnings += [f"  {d.line()}" for d in diffs]
    exposure = exposure_differences(groups, baseline)
    if exposure:
        warnings.append("WARNING: groups trained on a different amount of data than the "
                        "baseline (exposure differs):")
        warnings += [f"  {line}" for line in exposure]
    head, rows = compute_rows(groups, baseline)
    table = ["", "## Compute per group (mean over runs)", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if h == "group" else "--:" for h in head) + "|"]
    table += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return warnings, table
