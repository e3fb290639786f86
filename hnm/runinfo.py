"""Where a run writes, and the guard that nothing a user made is overwritten."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hnm.errors import HnmError


def run_dir() -> Path:
    """The Hydra output folder of the current job (cwd outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ValueError, ImportError):
        return Path.cwd()


def sweep_info() -> tuple[str | None, str]:
    """(group, name) for loggers: a multirun is one group named after its sweep folder, and each
    run is named by its overrides."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ValueError, ImportError):
        return None, "run"
    overrides = [o for o in hc.overrides.task if not o.startswith(("hydra.", "logger."))]
    name = ",".join(overrides) or "defaults"
    if hc.mode == RunMode.MULTIRUN:
        sweep = Path(hc.sweep.dir)
        return f"{sweep.parent.name}_{sweep.name}", f"{hc.job.num}:{name}"
    return None, name


def claim(path: Path, what: str) -> Path:
    """Refuse to write over an existing file or non-empty folder."""
    if path.exists() and (path.is_file() or any(path.iterdir())):
        raise HnmError(
            f"{what} already exists at {path}; hnm never overwrites a run's outputs. "
            "Choose another hydra.run.dir or move the old one away."
        )
    return path


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically, never over an existing file."""
    claim(path, path.name)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


RUN_STATES = ("running", "interrupted", "failed", "finished")
STATUS_FILE = "status.json"


def write_status(out: Path, state: str, **extra: Any) -> None:
    """Record a run's state in ``<out>/status.json`` (atomically; rewritten as the run goes):
    ``state`` is one of :data:`RUN_STATES`; ``extra`` e.g. ``error`` (one line), ``resume`` (the
    command that continues the run), ``step``."""
    if state not in RUN_STATES:
        raise ValueError(f"unknown run state {state!r}")
    out.mkdir(parents=True, exist_ok=True)
    body = {"state": state, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    tmp = out / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str))
    os.replace(tmp, out / STATUS_FILE)


def read_status(run: Path) -> dict[str, Any] | None:
    """The run folder's status (None for a folder written before status files existed, or
    one whose status file is unreadable)."""
    try:
        body = json.loads((run / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("state") in RUN_STATES else None
