"""What a run sends to the dashboards (W&B, TensorBoard) besides Lightning's step logs: its
name, strategy and tags, the zero-shot metrics at step 0, the final metrics, TensorBoard's
hyper-parameters, and the ``wandb sync`` line for offline runs.

Names: a run is named by its strategy's option names and seed (``tas_balanced+gist s2``,
:func:`hnm.runcontext.run_label`), its config carries the flat key ``strategy``
(``baseline``, ``sampler=ngame``, ``miner=ance+negatives=gist``) and its tags say the same,
so a dashboard can group and filter by strategy; a sweep's runs share one group (``group=…``,
by default the sweep folder's name).
"""

from __future__ import annotations

import glob
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hnm.compare.runs import flatten

# config keys shown as TensorBoard hyper-parameters besides the strategy sections
HPARAM_KEYS = ("strategy", "seed", "batch_size", "data.name", "data.eval_split",
               "data.max_train_pairs", "data.max_seq_length", "module.lr", "module.dropout",
               "module.warmup_ratio", "trainer.max_epochs", "trainer.max_steps",
               "trainer.precision", "encoder._target_", "encoder.name")
HPARAM_SECTIONS = ("sampler", "miner", "negatives", "loss", "poison")


def tags(strategy: str, cfg: Mapping[str, Any]) -> list[str]:
    """``sampler:ngame``-style tags of the strategy's parts, plus the dataset and split."""
    out = [p.replace("=", ":", 1) for p in strategy.split("+")] if strategy != "baseline" \
        else ["baseline"]
    data = cfg.get("data") or {}
    out += [f"data:{data.get('name')}", f"split:{data.get('eval_split')}"]
    return out


def is_wandb(logger: Any) -> bool:
    return type(logger).__name__ == "WandbLogger"


def is_tensorboard(logger: Any) -> bool:
    return type(logger).__name__ == "TensorBoardLogger"


def log_at(loggers: list[Any], metrics: Mapping[str, float], step: int,
           skip_tensorboard: bool = False) -> None:
    """``metrics`` to every logger at ``step`` (TensorBoard's final metrics go with its
    hyper-parameters instead, :func:`tensorboard_hparams`)."""
    values = {k: float(v) for k, v in metrics.items()}
    for logger in loggers:
        if not (skip_tensorboard and is_tensorboard(logger)):
            logger.log_metrics(values, step=step)


def hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flat hyper-parameters shown in TensorBoard's HParams dashboard: the strategy, the
    main training settings and every knob of the strategy sections (scalars only)."""
    flat = flatten(dict(config))
    out = {k: flat[k] for k in HPARAM_KEYS if k in flat}
    out.update({k: v for k, v in flat.items()
                if any(k.startswith(s + ".") for s in HPARAM_SECTIONS)})
    return {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in out.items()}


def tensorboard_hparams(loggers: list[Any], config: Mapping[str, Any],
                        final: Mapping[str, float], step: int, split: str) -> None:
    """TensorBoard: the run's final metrics at ``step``, and its hyper-parameters with the
    final evaluation's metrics (``{split}/…``) and the fit time as the HParams dashboard's
    columns, so that it lists every run of a sweep with its results."""
    shown = {k: float(v) for k, v in final.items()
             if k.startswith(f"{split}/") or k == "time/fit_s"}
    rest = {k: float(v) for k, v in final.items() if k not in shown}
    for logger in loggers:
        if is_tensorboard(logger):
            logger.log_metrics(rest, step=step)
            logger.log_hyperparams(hparams(config), metrics=shown, step=step)


def wandb_dirs(run_folder: Path) -> list[Path]:
    """The offline W&B run folders under a run folder."""
    return sorted(Path(p) for p in glob.glob(str(run_folder / "wandb" / "offline-run-*")))


def sync_line(paths: list[str]) -> str:
    return "wandb sync " + " ".join(shlex.quote(p) if "*" not in p else p for p in paths)


def wandb_hint(loggers: list[Any], run_folder: Path) -> str | None:
    """``W&B: offline run saved; upload it with: wandb sync …`` for an offline W&B run."""
    for logger in loggers:
        if is_wandb(logger) and getattr(logger, "_wandb_init", {}).get("mode") == "offline":
            found = wandb_dirs(run_folder)
            if found:
                return f"W&B (offline): upload this run with: {sync_line([str(found[-1])])}"
    return None
