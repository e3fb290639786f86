"""The comparison as text: terminal tables (rich), Markdown and CSV.

Two tables, both naming the split: the metrics of every group (mean ± std over seeds) and the
differences against the baseline, one row per group and tested metric (Δ with its 95% CI, the
paired t-test's p, Holm's adjusted p, the randomisation test's p, the minimum detectable Δ and
the seeds that would detect the observed one). ``compare.csv`` holds the same per group, dataset
and metric, with the compute columns.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from hnm.compare.compute import ComputeTable
from hnm.compare.power import TEST, TEST_ONE_SEED, TEST_QUERIES_ONLY
from hnm.compare.summary import MetricTest, SummaryRow


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def format_p(p: float | None) -> str:
    """``0.0312``, ``<1e-4`` or ``-``."""
    if p is None or not math.isfinite(p):
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def stage_title(stage: str, split: str) -> str:
    """``test`` for the final evaluation, ``zero-shot (test)`` for the zero-shot one."""
    return split if stage == "final" else f"{stage.replace('_', '-')} ({split})"


def headers(columns: Sequence[str], split: str) -> list[str]:
    """Titles of the metrics table; a metric column is ``{split} {metric}``."""
    names = [f"zero-shot {c.split('/')[-1]}" if c.startswith("zero_shot/") and
             not all(x.startswith("zero_shot/") for x in columns)
             else f"{split} {c.split('/')[-1]}" for c in columns]
    return ["#", "group", "dataset", "seeds", *names]


def cells(row: SummaryRow, columns: Sequence[str]) -> list[str]:
    out = [str(row.number) + (" (baseline)" if row.baseline else ""), row.group.label,
           row.dataset, ",".join(str(s) for s in row.seeds)]
    for col in columns:
        mean, std = row.metrics.get(col, (float("nan"), float("nan")))
        out.append("-" if not math.isfinite(mean) else f"{_num(mean)} ± {_num(std)}")
    return out


MARKS = {TEST: "", TEST_ONE_SEED: " ‡", TEST_QUERIES_ONLY: " †"}
DELTA_HEADERS = ["#", "group", "dataset", "metric", "Δ [95% CI]", "p", "Holm p",
                 "p (queries only)", "MDE (80%)", "seeds needed", "queries", "seeds"]


def delta_cells(row: SummaryRow, t: MetricTest) -> list[str]:
    r, q = t.result, t.paired
    head = [str(row.number), row.group.label, row.dataset, t.metric]
    if r is None:
        return [*head, t.note or "-", "-", "-", "-", "-", "-", "-", "-"]
    seeds = (str(r.seeds_needed) if r.seeds_needed is not None
             else f"- ({r.seeds_note})" if r.seeds_note else "-")
    mark = MARKS.get(r.test, "")  # one seed: seed variation borrowed (‡) or not in the test (†)
    return [*head, f"{r.delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]{mark}",
            format_p(r.p), format_p(t.p_holm), format_p(q.p_ttest if q else None),
            _num(r.mde), seeds, str(r.n), f"{r.seeds[0]} vs {r.seeds[1]}"
            + (" paired" if r.paired_seeds else "")]


def delta_rows(rows: Sequence[SummaryRow]) -> list[list[str]]:
    return [delta_cells(r, t) for r in rows for t in r.tests.values()]


def delta_note(rows: Sequence[SummaryRow]) -> str:
    per_family = max((sum(1 for r in rows if not r.baseline and r.dataset == d)
                      for d in {r.dataset for r in rows}), default=0)
    tests = {t.result.test for r in rows for t in r.tests.values() if t.result is not None}
    return (f"Δ = group − baseline per query (each query's metric averaged over a group's "
            f"seeds); 95% CI and p: two-sided {TEST} (the queries' own spread of the "
            "difference plus the spread of the runs' mean differences, Welch–Satterthwaite "
            f"df; paired by seed when both groups ran the same seeds); Holm p: adjusted over the "
            f"{per_family} group(s) tested per metric and dataset (not across metrics); "
            "p (queries only): paired t-test over queries, conditional on these trained "
            "models; MDE: smallest Δ detectable with 80% power at α=0.05 with these seeds "
            "and queries; seeds needed: per group, to detect the observed Δ."
            + (" ‡: one group has one seed; its seed-to-seed spread is taken to be the other "
               "group's (equal seed variance), so the CI is wide: run more seeds to narrow it."
               if TEST_ONE_SEED in tests else "")
            + (" †: both groups have one seed, so the test is over queries only and ignores "
               "seed-to-seed variation." if TEST_QUERIES_ONLY in tests else ""))


def compute_markdown(table: ComputeTable) -> list[str]:
    """The compute table and its caveat, as Markdown lines for ``compare.md``."""
    out = ["", "## Compute per group (mean over runs)", "",
           *markdown_table(table.headers, table.rows)]
    return out + (["", f"> {table.caveat}"] if table.caveat else [])


def shorten(label: str, limit: int = 34) -> str:
    """``label`` cut to ``limit`` characters with an ellipsis."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


def rich_table(head: Sequence[str], body: Sequence[Sequence[str]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for h in head:
        table.add_column(h, justify="left" if h in ("group", "dataset", "metric") else "right")
    for row in body:
        table.add_row(*row)
    return table


def markdown_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if h in ("group", "dataset", "metric") else "--:"
                            for h in head) + "|"]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                    for row in body]


def csv_text(rows: Sequence[SummaryRow], columns: Sequence[str], split: str, stage: str,
             compute: ComputeTable) -> str:
    """One line per group, dataset and metric (tested metrics with their test; the baseline's
    lines with its means): split, seeds, mean/std, zero-shot, Δ, CI, p with its test, Holm p,
    the query-only test's figures, MDE, seeds needed, per-seed Δ, and the group's compute."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    comp_names = compute.headers[3:]
    writer.writerow(["number", "group", "baseline", "dataset", "split", "stage", "metric",
                     "seeds", "n_seeds", "mean", "std", "zero_shot_mean", "delta", "ci_low",
                     "ci_high", "test", "p", "p_holm", "se", "se_queries", "se_seeds", "df",
                     "p_queries_ttest", "ci_low_queries", "ci_high_queries",
                     "p_randomisation", "mde_80", "seeds_needed", "seeds_note",
                     "paired_seeds", "seed_deltas", "queries", "note",
                     *[f"compute:{c}" for c in comp_names], "runs"])
    metrics = [c.split("/")[1] for c in columns if not c.startswith("zero_shot/")
               or stage == "zero_shot"]
    for row in rows:
        comp = compute.numbers[row.number - 1]
        for m in metrics:
            mean, std = row.metrics.get(f"{stage}/{m}", (math.nan, math.nan))
            zs = row.metrics.get(f"zero_shot/{m}", (math.nan, math.nan))[0]
            t = row.tests.get(m)
            r = t.result if t is not None else None
            q = t.paired if t is not None else None
            main = ([r.delta, r.ci_low, r.ci_high, r.test, r.p, _blank(t.p_holm), r.se,
                     r.se_queries, r.se_seeds, r.df] if r is not None and t is not None
                    else [""] * 10)
            query = ([q.p_ttest, q.ci_low, q.ci_high, q.p_random] if q is not None
                     else [""] * 4)
            extra = ([_blank(r.mde), "" if r.seeds_needed is None else r.seeds_needed,
                      r.seeds_note] if r is not None else [""] * 3)
            seeds = ([t.paired_seeds, " ".join(f"{d:.6f}" for d in t.seed_deltas)]
                     if t is not None else ["", ""])
            writer.writerow([row.number, row.group.label, row.baseline, row.dataset, split,
                             stage, m, " ".join(str(s) for s in row.seeds), len(row.seeds),
                             _blank(mean), _blank(std), _blank(zs), *main, *query, *extra,
                             *seeds, r.n if r is not None else "",
                             t.note if t is not None else "",
                             *[_blank(comp.get(c, math.nan)) for c in comp_names],
                             " ".join(str(x.path) for x in row.group.runs)])
    return buf.getvalue()


def _blank(x: float | None) -> object:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def print_wide(table: Table) -> None:
    """Print ``table`` without truncating cells: wider than the terminal if need be (and at its
    natural width when the output is not a terminal)."""
    console = Console()
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(width, console.width) if console.is_terminal else width + 1,
            soft_wrap=True).print(table)
