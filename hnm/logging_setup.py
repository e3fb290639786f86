"""Loggers from the ``logger`` config group, the resolved config logged to each, and
Lightning's console lines routed through Hydra's logging once."""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build_loggers(node: DictConfig | None, save_dir: str, group: str | None, name: str,
                  config: dict[str, Any], tags: list[str] | None = None) -> list[Any]:
    """Instantiate the configured Lightning loggers.

    ``node`` is either one logger (a mapping with ``_target_``), a mapping of several (each
    value a logger config, e.g. ``{wandb: …, tensorboard: …}``) or empty (no logger). W&B
    loggers get the sweep ``group``, the run ``name`` and ``tags`` unless the config sets
    them; a TensorBoard logger without a ``version`` writes under the run's name
    (``<run folder>/tensorboard/<name>``), so TensorBoard lists runs by the same names.
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
            if spec.get("tags") is None and tags:
                extra["tags"] = list(tags)
        if target.endswith("TensorBoardLogger") and not spec.get("version"):
            extra["version"] = name.replace(" ", "_").replace("/", "_")
        logger = instantiate(spec, **extra)
        logger.log_hyperparams(config)
        loggers.append(logger)
    return loggers


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def lightning_logs_once() -> None:
    """Lightning's INFO lines (``GPU available: …``) once, in Hydra's format and job log.

    ``import lightning`` gives the ``lightning`` logger a console handler of its own while
    letting records propagate to the root logger, where Hydra's handlers print them again (and
    ``lightning.pytorch`` / ``lightning.fabric`` add one and stop propagating when imported
    before logging is configured). When the root logger has handlers, this removes Lightning's
    own console handlers and lets the records propagate, so each line appears once."""
    import lightning  # noqa: F401 - its import adds the handlers removed here

    if not logging.getLogger().handlers:
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler and handler.stream in (
                    sys.stderr, sys.__stderr__):
                logger.removeHandler(handler)
        logger.propagate = True
