"""Loggers from the ``logger`` config group, and the resolved config logged to each."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build_loggers(node: DictConfig | None, save_dir: str, group: str | None, name: str,
                  config: dict[str, Any]) -> list[Any]:
    """Instantiate the configured Lightning loggers.

    ``node`` is either one logger (a mapping with ``_target_``), a mapping of several (each
    value a logger config, e.g. ``{wandb: …, tensorboard: …}``) or empty (no logger). W&B
    loggers get the sweep ``group`` and run ``name`` unless the config sets them.
    """
    if node is None or len(node) == 0:
        return []
    specs = [node] if "_target_" in node else [v for v in node.values()
                                                if isinstance(v, DictConfig) and "_target_" in v]
    loggers = []
    for spec in specs:
        extra: dict[str, Any] = {}
        target = str(spec["_target_"])
        if spec.get("save_dir") is None:
            extra["save_dir"] = save_dir
        if target.endswith("WandbLogger"):
            if spec.get("group") is None:
                extra["group"] = group
            if spec.get("name") is None:
                extra["name"] = name
        logger = instantiate(spec, **extra)
        logger.log_hyperparams(config)
        loggers.append(logger)
    return loggers


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
