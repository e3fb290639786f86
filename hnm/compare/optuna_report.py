"""Hydra callback: at the end of an Optuna sweep, print the best trial and where it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def best_trial_report(sweep_dir: Path, metric: str = "ndcg@10") -> str | None:
    """The Optuna sweeper's ``optimization_results.yaml`` as text, with the run folder of the
    best trial (the run whose ``metric``, as in ``optimize_metric``, equals the best value);
    None when the file does not exist."""
    import json

    import yaml

    path = sweep_dir / "optimization_results.yaml"
    if not path.is_file():
        return None
    text = path.read_text()
    result = yaml.safe_load(text) or {}
    lines = [f"optuna: best trial of {sweep_dir} ({path.name}):", text.rstrip()]
    best = result.get("best_value")
    if best is not None:
        for metrics in sorted(sweep_dir.glob("*/metrics.json")):
            values = [v for k, v in json.loads(metrics.read_text()).items()
                      if k == metric or ("/" not in metric and k.count("/") == 2
                                         and k.split("/")[0] not in ("zero_shot", "val")
                                         and k.endswith(f"/{metric}"))]
            if any(isinstance(v, (int, float)) and abs(v - float(best)) < 1e-12
                   for v in values):
                lines.append(f"best run folder: {metrics.parent}")
                break
    return "\n".join(lines)


class OptunaReport(Callback):
    """Prints the best parameters and value of an Optuna sweep (from the sweeper's
    ``optimization_results.yaml``) after the sweep's summary table."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        report = best_trial_report(Path(config.hydra.sweep.dir),
                                   str(config.get("optimize_metric", "ndcg@10")))
        if report:
            print(report)
