"""Where a command writes, checked before it starts: an existing run is never written into.

The output folder of ``hnm train``/``eval``/``mine`` must hold no run already (the files in
:data:`RUN_FILES`), unless it is the run that ``resume=`` continues in place, and a finished run
is never continued in place. ``hnm mine``'s output file and the embedding cache's folder must be
writable. Every refusal is a :class:`~hnm.errors.ConfigError` naming the key (run by
:mod:`hnm.preflight` before Hydra makes or touches any folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hnm.errors import ConfigError

RUN_FILES = (".hydra", "status.json", "metrics.json", "model", "checkpoints", "multirun.yaml")
# what a start refused after Hydra made its folder leaves there (nothing else is moved)
START_FILES = (".hydra", "status.json", "train.log", "eval.log", "mine.log", "wandb")


def rank() -> int:
    """This process's rank as a launcher announced it (:func:`hnm.dist.env_rank`, without
    importing torch)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key, "").strip().isdigit():
            return int(os.environ[key])
    return 0


def held_run_files(folder: Path) -> list[str]:
    """The files and folders of a run that ``folder`` already holds. Where several processes
    of one job start at once (torchrun, srun), each writes ``.hydra/``: it is not counted."""
    several = os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1")
    return [name for name in RUN_FILES if (folder / name).exists()
            and not (several and name == ".hydra")]


def refuse_if_run(folder: Path, key: str = "hydra.run.dir") -> None:
    """Refuse to start in ``folder`` when it holds a run already."""
    held = held_run_files(folder)
    if not held:
        return
    from hnm.runinfo import read_status

    state = (read_status(folder) or {}).get("state")
    hint = (f"; to continue that run: hnm train resume={folder}"
            if state in ("interrupted", "running") and (folder / "checkpoints").is_dir() else "")
    raise ConfigError(f"{key}={folder} already holds a run ({', '.join(held)}"
                      f"{f'; status {state}' if state else ''}); hnm never overwrites a run's "
                      f"outputs nor writes into another run's folder. Choose a new folder, or "
                      f"leave {key} out for a new timestamped one{hint}")


def refused_start(folder: Path) -> bool:
    """``folder`` holds only a start that was refused (a user error: a knob checked when the
    parts are built, not before) and made nothing: no file but :data:`START_FILES` (and the
    ``refused_start_*`` folders of earlier ones), so no metrics, model, checkpoint, evaluation
    or sweep that a new run could overwrite. Such a folder does not block the corrected
    command (:func:`set_aside_refused_start`); a start that failed on a bug does, its log
    being evidence to read where it was written."""
    if not folder.is_dir() or any(p.name not in START_FILES
                                  and not p.name.startswith("refused_start_")
                                  for p in folder.iterdir()):
        return False
    from hnm.runinfo import read_status

    status = read_status(folder) or {}
    return status.get("state") == "failed" and status.get("user_error") is True


def set_aside_refused_start(folder: Path) -> Path:
    """Move a refused start's files (:data:`START_FILES`) into a new ``refused_start_<time>``
    folder inside ``folder``, unchanged, so that a new run can start there; returns it."""
    from hnm.runinfo import read_status

    when = str((read_status(folder) or {}).get("updated", ""))[:19]
    stamp = "".join(c for c in when if c.isdigit() or c == "T").replace("T", "-") or "unknown"
    dest, n = folder / f"refused_start_{stamp}", 1
    while dest.exists():
        n += 1
        dest = folder / f"refused_start_{stamp}_{n}"
    dest.mkdir()
    for name in START_FILES:
        if (folder / name).exists():
            (folder / name).rename(dest / name)
    return dest


def checkpoint_path(value: Any) -> Path:
    """``resume=``'s checkpoint: a ``.ckpt`` file, or a run folder's ``checkpoints/last.ckpt``."""
    p = Path(str(value)).expanduser()
    if p.is_dir():
        last = p / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ConfigError(f"resume={value}: the folder has no checkpoints/last.ckpt; "
                              "expected a run folder of hnm train (or a .ckpt file)")
        return last
    if not p.is_file():
        raise ConfigError(f"resume={value}: no such checkpoint file or run folder")
    return p


def finished(folder: Path) -> bool:
    """Whether ``folder`` holds a finished run (``status.json``, or ``metrics.json`` in a
    run written before status files)."""
    from hnm.runinfo import read_status

    status = read_status(folder)
    if status is not None:
        return status.get("state") == "finished"
    return (folder / "metrics.json").exists()


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def check_resume(cfg: DictConfig, out: Path) -> None:
    """``resume=``: the checkpoint exists; continuing in place (the run folder is the
    checkpoint's own) is refused for a finished run; a new folder must not hold a run."""
    ckpt = checkpoint_path(cfg.resume)
    folder = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else None
    if folder is None or not _same(folder, out):
        refuse_if_run(out)
        return
    if finished(folder):
        raise ConfigError(
            f"resume={cfg.resume}: that run finished, so there is nothing to continue, and "
            "hnm never writes into a finished run. To train further, start a new run from its "
            f"model (encoder=hf encoder.name={folder / 'model'}); to branch from one of its "
            f"checkpoints, give a new folder: hnm train resume={ckpt} hydra.run.dir=NEW_FOLDER")


def path_of(cfg: DictConfig, key: str) -> Path | None:
    from omegaconf import OmegaConf

    try:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
    except Exception:  # noqa: BLE001 - an interpolation Hydra resolves later (or reports)
        return None
    return None if value is None else Path(os.path.abspath(str(value)))


def check_mine_output(cfg: DictConfig, out: Path | None) -> None:
    """``hnm mine``: the negatives file and its sidecar do not exist, and their folder is (or
    can be made) writable."""
    given = cfg.get("output")
    if given is None and out is None:
        return
    path = Path(os.path.abspath(os.path.expanduser(str(given)))) if given else \
        out / "negatives.jsonl"  # type: ignore[operator]
    if path.is_dir():
        raise ConfigError(f"output={given}: is a folder; expected a file path "
                          "(e.g. output=negatives.jsonl or output=negatives.parquet)")
    for file in (path, path.with_name(path.name + ".meta.json")):  # the file, its sidecar
        if file.exists():
            raise ConfigError(f"output={given or path}: {file} already exists; hnm never "
                              "overwrites it. Choose another file with output=PATH (or move "
                              "the old one away)")
    why = unwritable(path.parent)
    if why is not None:
        raise ConfigError(f"output={given or path}: cannot write the negatives file there "
                          f"({why}); choose a writable path with output=PATH")


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (made when missing), or None."""
    parent = folder
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders that do not exist yet are made when it writes
    if not parent.is_dir():
        return f"{parent} is not a folder"
    import tempfile

    try:  # a file made and removed at once: writable for this user, on this file system
        with tempfile.TemporaryFile(dir=parent, prefix=".hnm-probe-"):
            pass
    except OSError as err:
        return f"{parent} cannot be written: {err.strerror or type(err).__name__}"
    return None


def check_cache_dir(cfg: DictConfig) -> None:
    """The embedding cache's folder can be made and written, when the cache is on (the
    dataset cache beside it is optional: a run that cannot write it only warns)."""
    from omegaconf import OmegaConf

    if OmegaConf.select(cfg, "cache.embeddings", default=False) is not True:
        return
    folder = path_of(cfg, "cache.dir")
    why = unwritable(folder) if folder is not None else None
    if why is not None:
        raise ConfigError(f"cache.dir={folder}: cannot write the embedding cache there ({why}); "
                          "choose a writable folder with cache.dir=DIR or HNM_CACHE_DIR=DIR, or "
                          "turn the cache off with cache.embeddings=false")
