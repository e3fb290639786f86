"""What a checkpoint holds beyond Lightning's own, and how ``hnm train resume=…`` reads it.

Lightning's checkpoint holds the model (the training module: encoders and the models the
parts declared), the optimizer, the scheduler and the loops' position. hnm adds, under
``checkpoint["hnm"]`` (:class:`RunState`): every part's ``state_dict()`` (sampler, miner,
in-batch strategies, loss; :mod:`hnm.state`), the module's own (its step clock, refresh
counters, optimizer steps seen), every random generator, the position in the epoch (batches
done), the run's metrics so far (the zero-shot evaluation, the first mining's figures) and the
composed configuration, which a resume compares with its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from hnm.errors import ConfigError, StartRefused
from hnm.parts import RunParts
from hnm.state import rng_state

FORMAT = 2  # 2: parts' state_dict(), declared models in Lightning's state
# keys a resumed run may change: they do not shape what it computes
FREE_KEYS = ("resume", "hydra", "paths", "logger", "progress", "checkpoint", "cache",
             "eval.batch_size", "trainer.enable_progress_bar", "trainer.log_every_n_steps")


class RunState:
    """``checkpoint["hnm"]`` of a run (given to :class:`~hnm.callbacks.checkpoint.RunCheckpoint`
    when it is built): every part's ``state_dict()``, the training module's own state, every
    random generator, the position, the run's metrics and timings so far, the configuration.

    Args:
        parts: the run's parts.
        cfg: the composed configuration.
        metrics, timings: the run's figures so far (the same dicts the run fills).
    """

    def __init__(self, parts: RunParts, cfg: DictConfig, metrics: dict[str, float],
                 timings: dict[str, float]) -> None:
        self.parts, self.cfg = parts, cfg
        self.metrics, self.timings = metrics, timings

    def __call__(self, trainer: Any, module: Any, batches_done: int) -> dict[str, Any]:
        """The state after ``batches_done`` batches of the current epoch."""
        return {
            "format": FORMAT,
            "parts": {name: part.state_dict() for name, part in self.parts.named().items()},
            "module": module.steps_state(),
            "rng": rng_state(),
            "position": {"epoch": int(trainer.current_epoch), "batches_done": int(batches_done),
                         "global_step": int(trainer.global_step)},
            "run": {"metrics": dict(self.metrics), "timings": dict(self.timings)},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }


def restore_parts(run: Any, state: dict[str, Any]) -> None:
    """Set every part of ``run``, the training module's own state and the run's figures back
    to ``state``."""
    parts = run.parts.named()
    missing = sorted(set(state["parts"]) - set(parts))
    if missing:
        raise ConfigError(f"the checkpoint holds parts this run does not have: {missing}")
    for name, part in parts.items():
        if name in state["parts"]:
            try:
                part.load_state_dict(state["parts"][name])
            except ValueError as err:  # a class or reference this run does not have
                raise ConfigError(f"resume={run.resume_path}: the checkpoint's state of {name} "
                                  f"cannot be restored ({err}); it was not written by this "
                                  "hnm for this configuration") from None
    run.module.load_steps_state(state["module"])
    run.metrics.update(state["run"]["metrics"])
    run.timings.update(state["run"]["timings"])


def restore_sampler(run: Any, state: dict[str, Any]) -> None:
    """The batch sampler alone back to ``state`` (after a resumed epoch's skipped batches)."""
    run.parts.sampler.load_state_dict(state["parts"]["sampler"])


# -- reading -----------------------------------------------------------------------------------
def resolve(path: str | Path) -> Path:
    """A ``.ckpt`` file, or a run folder's newest checkpoint (``checkpoints/last.ckpt``)."""
    from hnm.run_folders import checkpoint_path

    return checkpoint_path(path)


def load(path: Path) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded without executing code (``weights_only=True``)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the reader met, the file is unusable
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err):  # a pickle of more than tensors: never unpickled
            first = ("a pickle that holds more than tensors, which hnm never loads "
                     "(weights_only=True)")
        raise StartRefused(f"resume={path}: cannot read the checkpoint ({first[:200]}); it may "
                           "be truncated (a run killed while writing it: use the one before, "
                           "hnm writes them atomically) or not a checkpoint at all") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise StartRefused(f"resume={path}: not a Lightning checkpoint (no state_dict)")
    if "hnm" not in ckpt or not isinstance(ckpt["hnm"], dict):
        raise StartRefused(f"resume={path}: a checkpoint without hnm's run state (written by "
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
    """Refuse a checkpoint written with another configuration, or whose parts' state names
    a class hnm would not rebuild (before the resume writes anything)."""
    from hnm.state import check_names

    try:
        check_names(ckpt["hnm"].get("parts", {}))
    except ValueError as err:
        raise StartRefused(f"resume={path}: the checkpoint's state cannot be restored ({err}); "
                           "it was not written by hnm") from None
    diffs = config_differences(ckpt["hnm"].get("config", {}), cfg)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; … {len(diffs) - 8} more" if len(diffs) > 8 else "")
        raise StartRefused(f"resume={path}: the checkpoint was written by a run with another "
                           f"configuration, so it cannot continue exactly: {shown}. Resume with "
                           "the run's own overrides (hnm train resume=<run folder> reads them "
                           "from its .hydra/overrides.yaml)")
