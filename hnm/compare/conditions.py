"""Are the groups compared under the same conditions, and what did each one cost?

A comparison of strategies is only meaningful when the groups differ in the strategy alone:
same data, encoder, dropout, batch size, schedule and evaluation, and the same exposure (the
training pairs and optimizer steps each run actually got). :func:`condition_differences` lists
every config value outside the strategy sections in which a group differs from the baseline,
:func:`exposure_differences` every group whose runs trained on a different number of pairs or
steps (what each group cost is :mod:`hnm.compare.compute`'s).
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
             "trainer.enable_model_summary", "module.telemetry_every", "data.leakage_check",
             "group", "eval.every_n_steps", "eval.val_split", "eval.val_queries",
             "eval.val_corpus")
# metrics of exposure (must match)
EXPOSURE = ("train/pairs", "train/steps")


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


def values(group: Group, key: str) -> list[float]:
    return [float(r.metrics[key]) for r in group.runs
            if key in r.metrics and math.isfinite(float(r.metrics[key]))]


def exposure_differences(groups: Sequence[Group], baseline: int) -> list[str]:
    """One line per group (and exposure metric) whose runs did not all get the baseline's
    number of training pairs or optimizer steps."""
    out = []
    for key in EXPOSURE:
        base = sorted(set(values(groups[baseline], key)))
        for i, g in enumerate(groups):
            mine = sorted(set(values(g, key)))
            if i != baseline and mine and base and mine != base:
                out.append(f"group {i + 1} ({g.label}): {key} = "
                           f"{', '.join(f'{v:g}' for v in mine)} (baseline: "
                           f"{', '.join(f'{v:g}' for v in base)})")
    return out
