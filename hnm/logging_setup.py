"""Loggers from the ``logger`` config group, the resolved config logged to each, and
Lightning's console lines routed through Hydra's logging once."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
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
        if target.endswith("WandbLogger"):  # Lightning passes anonymous=None, which wandb warns
            getattr(logger, "_wandb_init", {}).pop("anonymous", None)  # about as deprecated
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


def verbose() -> bool:
    """``hydra.verbose`` or ``HNM_VERBOSE=1`` given (see :func:`hnm.cli.verbose`)."""
    from hnm.cli import env_verbose

    return env_verbose()


def quiet_libraries() -> None:
    """The commands' output holds their own lines: Lightning's console lines once (see
    :func:`lightning_logs_once`) and, unless :func:`verbose`, none of the libraries' chatter:
    Lightning's start-up INFO lines (accelerators found, its logger advertisement, "fit
    stopped"), its ``_pytree`` deprecation warning, its warning about modules in eval mode
    (hnm's own choice of modes), and the line transformers prints at import
    under ``WANDB_MODE=offline``. Progress bars of encodes are off too (``hnm.encoders``
    reads :func:`verbose`); warnings that concern the run stay."""
    lightning_logs_once()
    if verbose():
        return
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # hnm sets every model's mode itself at each step (RetrievalModule.apply_modes): frozen
    # guides, rankers and document encoders are in eval mode on purpose
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric.utilities.rank_zero").setLevel(logging.WARNING)
    name = "transformers.integrations.integration_utils"
    if os.environ.get("WANDB_MODE") == "offline" and name not in sys.modules:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(Exception):
            __import__(name)  # prints "Running in WANDB offline mode" when first imported


def file_only(text: str, level: int = logging.INFO, name: str = "hnm") -> None:
    """Write ``text`` to the job's log file(s) only (Hydra's ``<command>.log``), for what the
    command also prints to the terminal itself (the final table, the run folder, a user
    error): the log file reads as the terminal did, and the terminal shows it once."""
    root = logging.getLogger()
    record = logging.getLogger(name).makeRecord(name, level, __file__, 0, text, None, None)
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and level >= handler.level:
            handler.handle(record)


def announce(text: str) -> None:
    """Print ``text`` and keep it in the job's log file (:func:`file_only`)."""
    print(text)
    file_only(text)
