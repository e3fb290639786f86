"""The comparison as text: a terminal table (rich), Markdown and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from hnm.compare.summary import SummaryRow


def _num(x: float, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def format_p(p: float | None) -> str:
    """``0.0312``, ``<1e-4`` or ``-``."""
    if p is None or not math.isfinite(p):
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def headers(columns: Sequence[str], metric: str) -> list[str]:
    """Column titles; a metric column ``{stage}/{metric}`` is titled ``{metric}``, except the
    zero-shot one."""
    names = [c.replace("zero_shot/", "zero-shot ") if c.startswith("zero_shot/")
             and not all(x.startswith("zero_shot/") for x in columns) else c.split("/")[-1]
             for c in columns]
    return ["#", "group", "dataset", "seeds", *names, f"Δ {metric} [95% CI]", "p (t-test)",
            "p (randomisation)", "queries"]


def cells(row: SummaryRow, columns: Sequence[str]) -> list[str]:
    """Display strings of one row, aligned with :func:`headers`."""
    out = [str(row.number), row.group.label, row.dataset, str(row.seeds)]
    for col in columns:
        mean, std = row.metrics.get(col, (float("nan"), float("nan")))
        out.append("-" if not math.isfinite(mean) else f"{_num(mean)} ± {_num(std)}")
    t = row.paired
    if row.baseline:
        out += ["baseline", "", "", ""]
    elif t is None:
        out += [row.note or "-", "-", "-", "-"]
    else:
        out += [f"{t.mean_diff:+.4f} [{t.ci_low:+.4f}, {t.ci_high:+.4f}]", format_p(t.p_ttest),
                format_p(t.p_random), str(t.n)]
    return out


def rich_table(rows: Sequence[SummaryRow], columns: Sequence[str], metric: str,
               title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for h in headers(columns, metric):
        table.add_column(h, justify="left" if h in ("group", "dataset") else "right")
    for row in rows:
        table.add_row(*cells(row, columns))
    return table


def markdown(rows: Sequence[SummaryRow], columns: Sequence[str], metric: str,
             title: str) -> str:
    head = headers(columns, metric)
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |",
             "|" + "|".join("---" if h in ("group", "dataset") else "--:" for h in head) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(row, columns))
                     + " |")
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[SummaryRow], columns: Sequence[str]) -> str:
    """Machine-readable numbers: mean and std per metric, the paired test and the runs."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["number", "group", "dataset", "seeds", "baseline",
                     *[f"{c}_{s}" for c in columns for s in ("mean", "std")],
                     "mean_diff", "ci_low", "ci_high", "p_ttest", "p_randomisation", "queries",
                     "note", "runs"])
    for row in rows:
        t = row.paired
        stats = ([t.mean_diff, t.ci_low, t.ci_high, t.p_ttest, t.p_random, t.n]
                 if t is not None else [""] * 6)
        writer.writerow([row.number, row.group.label, row.dataset, row.seeds, row.baseline,
                         *[v for c in columns for v in row.metrics.get(c, ("", ""))],
                         *stats, row.note, " ".join(str(r.path) for r in row.group.runs)])
    return buf.getvalue()


def print_wide(table: Table) -> None:
    """Print ``table`` without truncating cells: wider than the terminal if need be (and at its
    natural width when the output is not a terminal)."""
    console = Console()
    width = Measurement.get(console, console.options.update_width(10_000), table).maximum
    Console(width=max(width, console.width) if console.is_terminal else width + 1,
            soft_wrap=True).print(table)
