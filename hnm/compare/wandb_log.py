"""The comparison in W&B, beside the runs it compares: a run of ``job_type=compare`` in the
runs' project and group holding the comparison table (``compare.csv``: Δ, CI, p, Holm p, MDE,
compute) as a W&B Table and the figures as images. Offline unless the runs were online (or
``WANDB_MODE`` says otherwise); its folder sits in the comparison's output folder."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hnm.compare.grouping import Group

log = logging.getLogger(__name__)
MODES = ("auto", "off", "offline", "online")
# compare.csv's columns of text (the others are numbers)
TEXT = {"group", "baseline", "dataset", "split", "stage", "metric", "seeds", "test",
        "seeds_note", "paired_seeds", "seed_deltas", "note", "runs"}


def _wandb_settings(groups: Sequence[Group]) -> dict[str, Any] | None:
    """Project, entity, mode and group of the runs' W&B logger (None: no run used W&B)."""
    found = []
    for g in groups:
        for r in g.runs:
            for prefix in ("logger.", "logger.wandb."):
                if str(r.config.get(prefix + "_target_", "")).endswith("WandbLogger"):
                    found.append({k: r.config.get(prefix + k) for k in
                                  ("project", "entity", "mode", "group")}
                                 | {"run_group": r.context.get("group")})
    if not found:
        return None
    groups_seen = {f["group"] or f["run_group"] for f in found} - {None}
    first = found[0]
    return {"project": first["project"] or "hnm", "entity": first["entity"],
            "mode": first["mode"] or "offline",
            "group": groups_seen.pop() if len(groups_seen) == 1 else None}


def log_comparison(groups: Sequence[Group], out: Path, csv_text: str, figures: list[Path],
                   config: dict[str, Any], choice: str = "auto") -> Path | None:
    """Log the comparison to W&B; returns the local run folder (None when not logged)."""
    if choice == "off":
        return None
    settings = _wandb_settings(groups)
    if settings is None and choice == "auto":
        return None
    settings = settings or {"project": "hnm", "entity": None, "mode": "offline", "group": None}
    mode = choice if choice in ("offline", "online") else (
        os.environ.get("WANDB_MODE") or settings["mode"])
    import wandb

    rows = list(csv.reader(io.StringIO(csv_text)))
    run = wandb.init(project=settings["project"], entity=settings["entity"],
                     group=settings["group"] or out.name, job_type="compare",
                     name=f"compare {out.name}", dir=str(out), mode=mode, config=config,
                     tags=["compare", f"split:{config.get('split')}"])
    try:
        data = [[_cell(c, name in TEXT) for c, name in zip(row, rows[0])] for row in rows[1:]]
        payload: dict[str, Any] = {"comparison": wandb.Table(columns=rows[0], data=data)}
        for fig in figures:
            payload[fig.stem] = wandb.Image(str(fig))
        run.log(payload)
        folder = Path(run.dir).parent
    finally:
        run.finish()
    return folder


def _cell(text: str, is_text: bool) -> Any:
    """A CSV cell as W&B should type it: empty -> None, a number column's value -> float."""
    if text == "":
        return None
    if is_text:
        return text
    try:
        return float(text)
    except ValueError:
        return text
