"""A sweep's end summary as plain text that reads in an 80-column log: groups abbreviated
``G1``, ``G2``, … with a legend instead of truncated cells, mean ± std over seeds, the failed
jobs, and the next commands (``hnm compare``, ``wandb sync``); also as Markdown and CSV files
in the sweep folder (``summary.md``, ``summary.csv``)."""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hnm.compare.grouping import Group
from hnm.compare.render import shorten
from hnm.compare.runs import natural_key
from hnm.compare.stats import mean_std

WIDTH = 80
SHOWN = (("zero_shot", "ndcg@10", "zero-shot nDCG@10"), ("final", "ndcg@10", "nDCG@10"),
         ("final", "recall@100", "R@100"), ("final", "mrr@10", "MRR@10"))


@dataclass
class GroupLine:
    code: str
    group: Group
    seeds: list[str]
    values: dict[str, tuple[float, float]]  # column title -> (mean, std)


def group_lines(groups: Sequence[Group], baseline: int | None) -> list[GroupLine]:
    out = []
    for i, g in enumerate(groups):
        values = {}
        for stage, metric, title in SHOWN:
            found = [v for r in g.runs for k, v in r.metrics.items()
                     if k.startswith(f"{stage}/") and k.endswith(f"/{metric}")]
            if found:
                values[title] = mean_std(found)
        code = f"G{i + 1}" + ("*" if baseline == i else "")
        out.append(GroupLine(code, g, sorted((str(r.seed) for r in g.runs), key=natural_key),
                             values))
    return out


def _cell(value: tuple[float, float] | None, n: int) -> str:
    if value is None or not math.isfinite(value[0]):
        return "-"
    return f"{value[0]:.4f}" if n < 2 else f"{value[0]:.4f}±{value[1]:.4f}"


def text(sweep: Path, split: str, lines: Sequence[GroupLine], jobs: int,
         failed: Sequence[dict[str, Any]], commands: Sequence[str]) -> str:
    """The summary for the terminal and the log (no line longer than :data:`WIDTH`)."""
    titles = [t for _, _, t in SHOWN if any(t in g.values for g in lines)]
    head = ["group", "n", "seeds", *[t if t.startswith("zero") else f"{split} {t}"
                                     for t in titles]]
    body = [[g.code, str(len(g.group.runs)), shorten(",".join(g.seeds), 9),
             *[_cell(g.values.get(t), len(g.group.runs)) for t in titles]] for g in lines]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    table = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in [head, *body]]
    out = [f"sweep {sweep}", f"{jobs} jobs, {jobs - len(failed)} finished; metrics on the "
           f"{split} split, mean±std over seeds", ""]
    if any(len(line) > WIDTH for line in table):  # too wide: one block per group
        table = [f"{g.code} ({len(g.group.runs)} runs, seeds {','.join(g.seeds)}): " + ", ".join(
            f"{t} {_cell(g.values.get(t), len(g.group.runs))}" for t in titles) for g in lines]
        table = [w for line in table for w in textwrap.wrap(line, WIDTH,
                                                           subsequent_indent="    ")]
    out += table + ["", "groups (* = baseline):"]
    for g in lines:
        out += textwrap.wrap(f"{g.code} = {g.group.label}", WIDTH, initial_indent="  ",
                             subsequent_indent="      ")
    if failed:
        out += ["", f"{len(failed)} job(s) did not finish:"]
        for r in failed:
            out += textwrap.wrap(f"{r['run']} ({r['overrides'] or 'no overrides'}): "
                                 f"{r['status']}: {r['error']}", WIDTH, initial_indent="  ",
                                 subsequent_indent="    ")
    if commands:
        out += ["", "next:"] + [f"  {c}" for c in commands]
    return "\n".join(out) + "\n"


def markdown(sweep: Path, split: str, lines: Sequence[GroupLine],
             failed: Sequence[dict[str, Any]], commands: Sequence[str]) -> str:
    titles = [t for _, _, t in SHOWN if any(t in g.values for g in lines)]
    out = [f"# Sweep {sweep}", "", f"Metrics on the **{split}** split, mean ± std over seeds.",
           "", "| group | label | runs | seeds | " + " | ".join(
               t if t.startswith("zero") else f"{split} {t}" for t in titles) + " |",
           "|---|---|--:|---|" + "--:|" * len(titles)]
    for g in lines:
        out.append(f"| {g.code} | {g.group.label.replace('|', '/')} | {len(g.group.runs)} | "
                   f"{', '.join(g.seeds)} | " + " | ".join(
                       _cell(g.values.get(t), len(g.group.runs)).replace("±", " ± ")
                       for t in titles) + " |")
    if failed:
        out += ["", "## Jobs that did not finish", ""]
        out += [f"- `{r['run']}` ({r['overrides']}): {r['status']}: {r['error']}"
                for r in failed]
    if commands:
        out += ["", "## Next", "", "```", *commands, "```"]
    return "\n".join(out) + "\n"


def csv_text(split: str, lines: Sequence[GroupLine]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["group", "label", "baseline", "runs", "seeds", "split", "column", "mean", "std"])
    for g in lines:
        for title, (mean, std) in g.values.items():
            w.writerow([g.code.rstrip("*"), g.group.label, g.code.endswith("*"),
                        len(g.group.runs), " ".join(g.seeds), split, title, mean, std])
    return buf.getvalue()

