"""Process-group helpers for multi-device runs: ranks, sharded embedding, devices, relaunching.

Everything here is a no-op on one process, so single-device code paths call it freely.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hnm.errors import ConfigError
from hnm.types import EmbedFn

log = logging.getLogger(__name__)

_RANK_ENV = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
# what Lightning's subprocess launcher sets in the launching process
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
_SAVED: dict[str, Any] = {}
_LAUNCHED: list[Any] = []  # the launcher of this process's last relaunched job (its ranks)


def world() -> tuple[int, int]:
    """``(world_size, rank)`` of the initialised default process group, else ``(1, 0)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def env_rank() -> int:
    """This process's global rank as the launcher announced it in the environment (0 when none
    did). Valid before the process group exists, i.e. before ``trainer.fit``, where Lightning's
    DDP launcher or SLURM have already set ``LOCAL_RANK`` / ``SLURM_PROCID``."""
    for key in _RANK_ENV:
        value = os.environ.get(key)
        if value is not None:
            return int(value)
    return 0


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled); returns ``obj`` on one process."""
    size, rank = world()
    if size == 1:
        return obj
    box = [obj if rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def sharded_embed_fn(fn: EmbedFn) -> EmbedFn:
    """Wrap an :data:`~hnm.types.EmbedFn` so that, under a process group, each rank embeds a
    contiguous 1/world share of the texts and all ranks receive all embeddings.

    Every rank must call the wrapped function with the same texts in the same order (refresh
    code is deterministic given ``(seed, epoch)`` and the synchronised weights, so it does).
    The result is bitwise identical on every rank: each row was computed by exactly one rank.
    """

    def sharded(texts: Sequence[str]) -> np.ndarray:
        size, rank = world()
        if size == 1:
            return fn(texts)
        bounds = np.linspace(0, len(texts), size + 1).round().astype(int)
        mine = list(texts[bounds[rank]:bounds[rank + 1]])
        local = np.asarray(fn(mine) if mine else np.zeros((0, 0), np.float32), np.float32)
        parts: list[Any] = [None] * size
        dist.all_gather_object(parts, local)
        dims = {p.shape[1] for p in parts if len(p)}
        dim = dims.pop() if dims else 0
        return np.ascontiguousarray(np.concatenate(
            [p if len(p) else np.zeros((0, dim), np.float32) for p in parts]), dtype=np.float32)

    return sharded


def torch_device(device: str | None) -> str:
    """Map a config device (``cpu``, ``gpu``, ``cuda``, ``cuda:N``, ``auto``, ``mps``, None) to a
    torch device string.

    ``gpu`` / ``cuda`` / ``auto`` / None pick ``cuda:LOCAL_RANK`` when CUDA is available (each
    DDP process its own GPU), else ``cpu``; an explicit ``cuda:N`` without CUDA falls back to
    ``cpu`` with a warning.
    """
    name = "auto" if device is None else str(device).lower()
    if name == "cpu" or name.startswith(("mps", "xpu", "hpu")):
        return name
    if name in ("gpu", "cuda", "auto") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            if name != "auto":
                log.warning("device %r requested but CUDA is not available; using cpu", device)
            return "cpu"
        if name.startswith("cuda:"):
            return name
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return f"cuda:{local % max(torch.cuda.device_count(), 1)}"
    return name


def prepare_relaunch(trainer: Any, entry_file: str | Path | None = None) -> None:
    """Make Lightning's DDP launcher re-run *this job* in each extra process.

    Lightning starts the other ranks by re-running ``sys.argv`` (with ``hydra.run.dir`` set to
    Hydra's ``run.dir``). ``hnm train`` rewrites ``sys.argv`` and may run a multirun (``-m``),
    so before ``trainer.fit`` this points ``sys.argv`` at ``python hnm/entry.py <this job's
    overrides>`` (or ``python -m hnm.cli train …``; ``entry_file`` replaces ``hnm/entry.py``)
    and Hydra's ``run.dir`` at this job's output folder: every rank joins the same job and
    folder, also inside a local sweep. Nothing happens on one device or when processes are
    created externally (SLURM, torchrun, or in a rank that was itself launched).
    """
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )

    launcher = getattr(trainer.strategy, "launcher", None)
    if trainer.world_size <= 1 or not isinstance(launcher, _SubprocessScriptLauncher):
        return
    env = getattr(trainer.strategy, "cluster_environment", None)
    if env is not None and env.creates_processes_externally:
        return
    try:
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import open_dict, read_write

        hc: Any = HydraConfig.get()
    except (ImportError, ValueError):
        return
    import __main__

    spec = getattr(__main__, "__spec__", None)
    overrides = list(hc.overrides.task)
    if spec is None:
        argv = [str(entry_file or Path(__file__).with_name("entry.py")), *overrides]
    elif spec.name == "hnm.cli":
        argv = [sys.argv[0], "train", *overrides]
    elif spec.name == "hnm.entry":
        argv = [sys.argv[0], *overrides]
    else:
        raise ConfigError(
            f"multi-device training was started from `python -m {spec.name}`; Lightning "
            "relaunches the main module for each device, so start it with the `hnm train …` "
            "command (or `python -m hnm.cli train …`)"
        )
    _SAVED.update(argv=list(sys.argv), env={k: os.environ.get(k) for k in _LAUNCH_ENV})
    _LAUNCHED[:] = [launcher]
    sys.argv = argv
    with read_write(hc), open_dict(hc):
        hc.run.dir = hc.runtime.output_dir


def finish_relaunch() -> None:
    """After ``trainer.fit`` in the process that launched the other ranks: close the process
    group and restore ``sys.argv`` and the launcher's environment variables, so that the
    next job of a sweep in this process launches its own ranks again."""
    if not _SAVED:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    for key, value in _SAVED["env"].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    sys.argv = _SAVED["argv"]
    _SAVED.clear()


def stop_launched_ranks(timeout: float = 30.0) -> None:
    """After a failed job in the process that launched its other ranks: kill those still
    running (they may wait in a collective for this rank forever) so that a sweep can go on.

    Lightning watches the ranks it launched and, when one exits non-zero, kills every process,
    the launching one (the sweep) included; its watcher reads the launcher's list of processes,
    so the list is emptied first (the watcher then ends quietly) and the ranks are killed after.
    A no-op when this process launched no ranks.
    """
    if not _LAUNCHED:
        return
    launcher = _LAUNCHED.pop()
    procs = list(getattr(launcher, "procs", []))
    if not procs:
        return
    launcher.procs.clear()  # the same list object the watcher holds
    for proc in procs:
        if proc.poll() is None:
            log.warning("stopping rank process %d of the failed job", proc.pid)
            proc.kill()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except Exception as err:  # noqa: BLE001 - a rank that will not die must not stop the sweep
            log.warning("rank process %d did not stop: %s", proc.pid, err)
