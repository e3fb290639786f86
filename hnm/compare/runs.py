"""Find finished runs below folders and read what ``hnm compare`` needs from each."""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hnm.compare.files import find_per_query
from hnm.errors import DataError, HnmError
from hnm.runcontext import CONTEXT_FILE

log = logging.getLogger(__name__)

CURVE_FILE = "train_curve.csv"
VAL_CURVE_FILE = "val_curve.csv"
# the stage of a run's evaluation after training, whatever its split: its metric keys are
# ``{split}/{dataset}/{metric}`` on disk (``test/…`` for runs from before keys named the split)
# and ``final/{dataset}/{metric}`` in a RunRecord
FINAL = "final"


@dataclass
class RunRecord:
    """One finished run: its folder, composed config, command-line overrides and metrics.

    Attributes:
        path: the run folder (holds ``metrics.json`` and ``.hydra/``).
        config: the composed config flattened to dotted keys (``loss.temperature``), values
            as written in ``.hydra/config.yaml`` (interpolations unresolved).
        overrides: the run's command-line overrides (``.hydra/overrides.yaml``).
        metrics: ``metrics.json``.
    """

    path: Path
    config: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, float]
    context: dict[str, Any] = field(default_factory=dict)
    final_stage: str = "test"
    _per_query: dict[tuple[str, str], dict[str, dict[str, float]] | None] = field(
        default_factory=dict, repr=False)

    @property
    def split(self) -> str:
        """The split the final evaluation ran on (``context.json``, else the config)."""
        return str(self.context.get("eval_split") or self.config.get("data.eval_split")
                   or "test")

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    def file_stage(self, stage: str) -> str:
        """The stage name in the run's files: :data:`FINAL` is the split's name."""
        return self.final_stage if stage == FINAL else stage

    def datasets(self, stage: str) -> list[str]:
        """Datasets with metrics of ``stage`` (keys ``{stage}/{dataset}/{metric}``)."""
        found = {k.split("/")[1] for k in self.metrics
                 if k.count("/") == 2 and k.startswith(f"{stage}/")}
        return sorted(found)

    def per_query(self, stage: str, dataset: str) -> dict[str, dict[str, float]] | None:
        """Query id -> metric -> value of ``stage``/``dataset``; None without a per-query file."""
        key = (stage, dataset)
        if key not in self._per_query:
            from hnm.eval.run_io import read_per_query

            path = find_per_query(self.path, self.file_stage(stage), dataset,
                                  self.datasets(stage) == [dataset])
            self._per_query[key] = read_per_query(path) if path is not None else None
        return self._per_query[key]

    def curve(self) -> list[dict[str, float]]:
        """Training curve rows (``step``, ``loss``, …): ``train_curve.csv``, else the
        CSV logger's ``train/loss``; empty when neither exists."""
        path = self.path / CURVE_FILE
        if path.is_file():
            return _read_rows(path, {"step": "step", "loss": "loss", "lr": "lr"})
        for path in sorted(self.path.glob("**/version_*/metrics.csv")):
            rows = _read_rows(path, {"step": "step", "loss": "train/loss", "lr": "train/lr"})
            if rows:
                return rows
        return []

    def val_curve(self, metric: str) -> list[tuple[int, float]]:
        """The learning curve of ``metric`` (``val_curve.csv``): (step, value) rows."""
        path = self.path / VAL_CURVE_FILE
        if not path.is_file():
            return []
        out = []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    out.append((int(row["step"]), float(row[metric])))
                except (KeyError, TypeError, ValueError):
                    continue
        return out


def _read_rows(path: Path, columns: dict[str, str]) -> list[dict[str, float]]:
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out = {}
            for name, col in columns.items():
                try:
                    out[name] = float(row[col])
                except (KeyError, TypeError, ValueError):
                    continue
            if "step" in out and "loss" in out:
                rows.append(out)
    return rows


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings/lists to ``{dotted.key: scalar}`` (lists keep their index)."""
    items: list[tuple[Any, Any]]
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, (dict, list)) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def load_run(path: Path) -> RunRecord:
    """Read one run folder; :class:`DataError` names the file that is missing or broken."""
    import yaml

    files = {"metrics": path / "metrics.json", "config": path / ".hydra" / "config.yaml",
             "overrides": path / ".hydra" / "overrides.yaml"}
    for what, file in files.items():
        if not file.is_file():
            raise DataError(f"{path} is not a finished hnm run: {file.name} ({what}) is missing")
    try:
        metrics = json.loads(files["metrics"].read_text())
        config = yaml.safe_load(files["config"].read_text()) or {}
        overrides = yaml.safe_load(files["overrides"].read_text()) or []
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise DataError(f"{path}: cannot read the run's metrics.json or .hydra files ({err})"
                        ) from err
    if not isinstance(metrics, dict) or not isinstance(config, dict):
        raise DataError(f"{path}: metrics.json and .hydra/config.yaml must hold mappings")
    context: dict[str, Any] = {}
    if (path / CONTEXT_FILE).is_file():
        try:
            context = json.loads((path / CONTEXT_FILE).read_text()) or {}
        except json.JSONDecodeError as err:
            raise DataError(f"{path / CONTEXT_FILE}: not valid JSON ({err})") from err
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
    run = RunRecord(path=path, config=flatten(config), overrides=[str(o) for o in overrides],
                    metrics={}, context=context if isinstance(context, dict) else {})
    run.final_stage, run.metrics = canonical_stages(numbers, run.split)
    return run


def canonical_stages(metrics: dict[str, float], split: str) -> tuple[str, dict[str, float]]:
    """(the final stage's name on disk, metrics with its keys renamed to :data:`FINAL`).

    The final evaluation's keys are ``{split}/…``; runs written before keys named the split
    used ``test/…`` whatever the split (their config's ``data.eval_split`` says which)."""
    def stage_of(key: str) -> str | None:
        return key.split("/")[0] if key.count("/") == 2 else None

    stages = {stage_of(k) for k in metrics}
    final = split if split in stages else "test"
    return final, {(f"{FINAL}/{k.split('/', 1)[1]}" if stage_of(k) == final else k): v
                   for k, v in metrics.items()}


def natural_key(text: str | Path) -> list[Any]:
    """Sort key that puts ``2`` before ``10`` (numbers compared as numbers)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text))]


def _task_name(run: Path) -> str | None:
    """The command that wrote a folder (``train``, ``eval``), from its ``.hydra/config.yaml``."""
    path = run / ".hydra" / "config.yaml"
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("task_name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def skip_reason(run: Path) -> str | None:
    """Why ``hnm compare`` leaves a run folder out (None: it counts). A run counts when its
    ``status.json`` says finished, or, for runs from before status files existed, when it has
    none but holds ``metrics.json``."""
    from hnm.runinfo import STATUS_FILE, read_status

    if _task_name(run) == "eval":
        return "an hnm eval folder, not a training run"
    status = read_status(run)
    if status is not None and status["state"] != "finished":
        error = status.get("error")
        return f"{status['state']}" + (f": {error}" if error else "")
    if status is None and (run / STATUS_FILE).exists():
        return "unreadable status.json"
    if not (run / "metrics.json").is_file():
        return "no metrics.json"
    return None


def find_runs(folders: list[Path], notes: list[str] | None = None) -> list[RunRecord]:
    """Every finished run in or below ``folders`` (a run folder or a sweep folder), in
    natural path order (``2`` before ``10``), each once.

    Runs that did not finish (``status.json`` other than finished, or no ``metrics.json``) are
    left out, each with a line in ``notes`` (``<folder>: skipped (<why>)``). A folder with
    ``metrics.json`` but no ``.hydra/`` files is skipped with a warning. Raises
    :class:`HnmError` when a folder does not exist or nothing below it is a finished run.
    """
    from hnm.runinfo import STATUS_FILE

    found: dict[Path, RunRecord] = {}
    for folder in folders:
        if not folder.is_dir():
            raise HnmError(f"{folder}: no such folder; pass run folders or sweep folders "
                           "(outputs/…, multirun/…)")
        candidates = sorted({m.parent for name in ("metrics.json", STATUS_FILE)
                             for m in folder.glob(f"**/{name}")}, key=natural_key)
        runs, skipped = [], []
        for cand in candidates:
            why = skip_reason(cand)
            if why is not None:
                skipped.append(f"{cand}: skipped ({why})")
                continue
            if not (cand / ".hydra" / "config.yaml").is_file():
                log.warning("%s: has metrics.json but no .hydra/config.yaml; skipped", cand)
                continue
            runs.append(load_run(cand))
        if notes is not None:
            notes.extend(skipped)
        if not runs:
            more = (f"; {len(skipped)} run(s) below it did not finish: "
                    + "; ".join(skipped[:3]) + (" …" if len(skipped) > 3 else "")
                    if skipped else "")
            raise HnmError(f"{folder}: no finished run found (a run folder holds metrics.json "
                           f"and .hydra/config.yaml){more}")
        for run in runs:
            found.setdefault(run.path.resolve(), run)
    return list(found.values())
