"""Where a run writes, and the guard that nothing a user made is overwritten."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
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


def task_overrides() -> list[str]:
    """The current job's command-line overrides, without Hydra's and the loggers' own."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = HydraConfig.get().overrides.task
    except (ValueError, ImportError):
        return []
    return [str(o) for o in task if not str(o).startswith(("hydra.", "logger."))]


def job_number() -> int | None:
    """The job's number in a multirun (None for a single run)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ValueError, ImportError):
        return None
    return int(hc.job.num) if hc.mode == RunMode.MULTIRUN else None


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


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same folder, same suffixes) to write a file or a
    folder into; renamed to ``path`` when the block ends, removed when it fails (a full disk,
    an interrupt), so that ``path`` is either complete or absent. An ``OSError`` of the write
    names ``path`` (the file the user knows), not the temporary one."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(err, OSError) and err.filename in (None, str(tmp)) and err.errno:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from err
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically, never over an existing file."""
    claim(path, path.name)
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


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
    write_text(out / STATUS_FILE, json.dumps(body, indent=2, sort_keys=True, default=str))


def read_status(run: Path) -> dict[str, Any] | None:
    """The run folder's status (None for a folder written before status files existed, or
    one whose status file is unreadable)."""
    try:
        body = json.loads((run / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and body.get("state") in RUN_STATES else None
