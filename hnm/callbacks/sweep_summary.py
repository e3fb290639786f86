"""Hydra callback: at the end of a multirun, print one table of every run's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hnm.report import print_table, runs_table


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per run folder below ``sweep_dir`` that holds ``metrics.json``."""
    rows = []
    for metrics_file in sorted(sweep_dir.glob("**/metrics.json")):
        run = metrics_file.parent
        overrides_file = run / ".hydra" / "overrides.yaml"
        overrides = ""
        if overrides_file.exists():
            import yaml

            overrides = " ".join(yaml.safe_load(overrides_file.read_text()) or [])
        row: dict[str, Any] = {"run": str(run.relative_to(sweep_dir)) or ".",
                               "overrides": overrides}
        row.update(json.loads(metrics_file.read_text()))
        rows.append(row)
    return rows


class SweepSummary(Callback):
    """Prints the sweep's runs (overrides, zero-shot and final nDCG@10 / Recall@100)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect_runs(sweep_dir)
        if not rows:
            print(f"sweep {sweep_dir}: no run finished")
            return
        metric_cols = []
        for key in ("zero_shot", "test"):
            for m in ("ndcg@10", "recall@100"):
                metric_cols += sorted({k for r in rows for k in r if k.startswith(f"{key}/")
                                       and k.endswith(f"/{m}")})
        print_table(runs_table(rows, ["run", "overrides", *metric_cols],
                               title=f"sweep {sweep_dir}"))
