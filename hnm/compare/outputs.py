"""The files and the W&B run a comparison writes besides its tables: the figures, the HTML
report and the ``job_type=compare`` run; every file claimed first, never overwritten."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hnm.compare.compute import ComputeTable
from hnm.compare.grouping import Group
from hnm.compare.summary import SummaryRow, tested_metrics
from hnm.runinfo import claim


def write(out: Path, name: str, text: str) -> None:
    claim(out / name, name).write_text(text, encoding="utf-8")


def command_line(folders: Sequence[Path]) -> str:
    """The command as typed (``hnm compare …``), for the report."""
    if len(sys.argv) > 2 and sys.argv[1] == "compare":
        return "hnm compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    return "hnm compare " + " ".join(shlex.quote(str(f)) for f in folders)


def figures_for(metric: str, groups: Sequence[Group], baseline: int,
                rows: Sequence[SummaryRow], stage: str, split: str, out: Path) -> list[Path]:
    """``compare.png`` (the forest plot) and ``curves.png`` when a run has a curve."""
    from hnm.compare.plot import plot_curves, plot_forest

    figures = [plot_forest(rows, tested_metrics(metric), stage, split,
                           claim(out / "compare.png", "plot"))]
    val_splits = sorted({str(r.config.get("eval.val_split") or "dev") for g in groups
                         for r in g.runs})
    curves = plot_curves(groups, baseline, metric, ", ".join(val_splits),
                         claim(out / "curves.png", "plot"))
    return figures + ([curves] if curves is not None else [])


def write_report(out: Path, title: str, split: str, stage: str, command: str,
                 groups: Sequence[Group], baseline: int, rows: Sequence[SummaryRow],
                 table: tuple[list[str], list[list[str]]], compute: ComputeTable,
                 warnings: Sequence[str], metric: str, with_texts: bool) -> Path:
    """``compare.html``."""
    from hnm.compare.html import write_html
    from hnm.compare.report_data import report

    data = report(title, split, stage, command, f"{dt.datetime.now():%Y-%m-%d %H:%M}",
                  groups, baseline, rows, table, compute, warnings, metric,
                  tested_metrics(metric), with_texts=with_texts)
    return write_html(data, claim(out / "compare.html", "compare.html"))


def to_wandb(choice: str, groups: Sequence[Group], out: Path, csv_body: str,
             figures: list[Path], config: dict[str, Any]) -> None:
    """The ``job_type=compare`` W&B run (:mod:`hnm.compare.wandb_log`), and its sync line."""
    from hnm.compare.wandb_log import log_comparison

    try:
        folder = log_comparison(groups, out, csv_body, figures, config, choice)
    except Exception as err:  # noqa: BLE001 - the files are written; W&B is an extra
        print(f"W&B: the comparison was not logged ({type(err).__name__}: {err})")
        return
    if folder is not None:
        offline = sorted(out.glob("wandb/offline-run-*"))
        if offline:
            print(f"W&B (offline): upload the comparison with: wandb sync {offline[-1]}")
        else:
            print(f"W&B: the comparison is logged (local files in {folder})")
