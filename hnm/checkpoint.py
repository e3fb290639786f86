"""What a checkpoint holds beyond Lightning's own, and how ``hnm train resume=…`` reads it.

Lightning's checkpoint holds the model (the training module: encoders, the loss's and the
parts' declared models), the optimizer, the scheduler and the loops' position. hnm adds, under
``checkpoint["hnm"]``: the state of every part (:mod:`hnm.state`: sampler, miner, negatives
strategies, loss), the module's own (its step clock, refresh counters, optimizer steps seen),
every random generator, the position in the epoch (batches done), the run's metrics so far
(the zero-shot evaluation, the first mining's figures) and the composed configuration, which
a resume compares with its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from hnm.errors import ConfigError
from hnm.state import Settles, capture, held_elsewhere, restore, rng_state

FORMAT = 1
# keys a resumed run may change: they do not shape what it computes
FREE_KEYS = ("resume", "hydra", "paths", "logger", "progress", "checkpoint", "cache",
             "eval.batch_size", "trainer.enable_progress_bar", "trainer.log_every_n_steps")


def parts_of(run: Any) -> dict[str, Any]:
    """Every object whose attributes shape the rest of ``run``, by a stable name."""
    from hnm.samplers.distributed import ShardedBatchSampler

    sampler = run.dm.batch_sampler
    if isinstance(sampler, ShardedBatchSampler):
        sampler = sampler.sampler
    out: dict[str, Any] = {"sampler": sampler, "loss": run.module.loss_fn}
    if run.miner is not None:
        out["miner"] = run.miner
    for name, s in zip(run.strategy_names, run.strategies):
        out[f"negatives/{name}"] = s
    return out


def _objects(run: Any) -> dict[str, Any]:
    """The run's own objects that parts refer to (rebuilt from the configuration, never
    copied into a checkpoint)."""
    out = {"module": run.module, "data": run.data, "pairs": run.pairs, "dm": run.dm,
           "trainer": run.trainer, "evaluator": run.evaluator, "encoder": run.encoder}
    if run.module.doc_encoder is not None:
        out["doc_encoder"] = run.module.doc_encoder
    return out


def _skip(run: Any) -> set[int]:
    return held_elsewhere([run.module], *_objects(run).values())


def _refs(run: Any) -> dict[int, str]:
    return {id(obj): name for name, obj in _objects(run).items()}


def run_state(run: Any, batches_done: int) -> dict[str, Any]:
    """``checkpoint["hnm"]`` of ``run`` after ``batches_done`` batches of the current epoch."""
    parts = parts_of(run)
    for part in parts.values():
        if isinstance(part, Settles):
            part.settle()
    skip = _skip(run)
    module = run.module
    return {
        "format": FORMAT,
        "parts": {name: capture(part, skip, refs=_refs(run)) for name, part in parts.items()},
        "module": {"timings": module.clock.state_dict(),
                   "optimizer_steps_seen": int(module.optimizer_steps_seen),
                   "refresher": module.refresher.state_dict()},
        "rng": rng_state(),
        "position": {"epoch": int(run.trainer.current_epoch), "batches_done": int(batches_done),
                     "global_step": int(run.trainer.global_step)},
        "run": {"metrics": dict(run.metrics), "timings": dict(run.timings)},
        "config": OmegaConf.to_container(run.cfg, resolve=True),
    }


def restore_parts(run: Any, state: dict[str, Any]) -> None:
    """Set every part of ``run`` back to ``state`` (before ``trainer.fit``)."""
    parts = parts_of(run)
    missing = sorted(set(state["parts"]) - set(parts))
    if missing:
        raise ConfigError(f"the checkpoint holds parts this run does not have: {missing}")
    for name, part in parts.items():
        if name in state["parts"]:
            restore(part, state["parts"][name], _objects(run))
    run.module.clock.load_state_dict(state["module"]["timings"])
    run.module.optimizer_steps_seen = state["module"]["optimizer_steps_seen"]
    run.module.refresher.load_state_dict(state["module"]["refresher"])
    run.metrics.update(state["run"]["metrics"])
    run.timings.update(state["run"]["timings"])


def restore_sampler(run: Any, state: dict[str, Any]) -> None:
    """The batch sampler alone back to ``state`` (after a resumed epoch's skipped batches)."""
    restore(parts_of(run)["sampler"], state["parts"]["sampler"], _objects(run))


# -- reading -----------------------------------------------------------------------------------
def resolve(path: str | Path) -> Path:
    """A ``.ckpt`` file, or a run folder's newest checkpoint (``checkpoints/last.ckpt``)."""
    p = Path(str(path)).expanduser()
    if p.is_dir():
        last = p / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise ConfigError(f"resume={path}: the folder has no checkpoints/last.ckpt; "
                              "expected a run folder of hnm train (or a .ckpt file)")
        return last
    if not p.is_file():
        raise ConfigError(f"resume={path}: no such checkpoint file or run folder")
    return p


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded without executing code (``weights_only=True``)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the reader met, the file is unusable
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"resume={path}: cannot read the checkpoint ({first[:200]}); it may "
                          "be truncated (a run killed while writing it: use the one before, "
                          "hnm writes them atomically) or not a checkpoint at all") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"resume={path}: not a Lightning checkpoint (no state_dict)")
    if "hnm" not in ckpt or not isinstance(ckpt["hnm"], dict):
        raise ConfigError(f"resume={path}: a checkpoint without hnm's run state (written by "
                          "another tool or an older hnm); hnm can only resume its own "
                          "checkpoints exactly")
    return ckpt


def config_differences(saved: dict[str, Any], cfg: DictConfig) -> list[str]:
    """``key: saved -> now`` for every config value that shapes training and differs."""
    from hnm.compare.runs import flatten

    now = flatten(OmegaConf.to_container(cfg, resolve=True))
    old = flatten(saved)
    free = lambda k: any(k == f or k.startswith(f + ".") for f in FREE_KEYS)  # noqa: E731
    keys = sorted(k for k in set(now) | set(old) if not free(k))
    return [f"{k}: {old.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
            for k in keys if repr(old.get(k)) != repr(now.get(k))]


def check_compatible(path: Path, ckpt: dict[str, Any], cfg: DictConfig) -> None:
    diffs = config_differences(ckpt["hnm"].get("config", {}), cfg)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; … {len(diffs) - 8} more" if len(diffs) > 8 else "")
        raise ConfigError(f"resume={path}: the checkpoint was written by a run with another "
                          f"configuration, so it cannot continue exactly: {shown}. Resume with "
                          "the run's own overrides (hnm train resume=<run folder> reads them "
                          "from its .hydra/overrides.yaml)")
