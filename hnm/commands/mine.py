"""``hnm mine``: mine negatives for every training query and write them to a file."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hnm.config_check import instantiate
from hnm.data.dataset import TrainPairs
from hnm.logging_setup import build_loggers, resolved
from hnm.miners.io import write_negatives
from hnm.runinfo import run_dir, sweep_info, task_overrides

log = logging.getLogger(__name__)


def output_path(cfg: DictConfig) -> Path:
    """``output=PATH`` or ``<run folder>/negatives.jsonl``."""
    given = cfg.get("output")
    return Path(str(given)).expanduser() if given else run_dir() / "negatives.jsonl"


def mine(cfg: DictConfig) -> Path:
    """Mine with ``cfg.miner`` over the training pairs of ``cfg.data`` (respecting
    ``data.max_train_pairs``) and write one record per training query plus a
    ``<file>.meta.json`` sidecar. Refuses to overwrite either file.

    Returns:
        The path of the negatives file.
    """
    from hnm import knobs
    from hnm.cache import frozen_embed_fn
    from hnm.precision import choose
    from hnm.run_folders import check_mine_output
    from hnm.train import load_data

    t_start = time.perf_counter()
    knobs.check(cfg)
    out = output_path(cfg)
    check_mine_output(cfg, out.parent)  # before mining: the file is new and can be written
    choose(cfg, run_dir())  # encoder.inference=auto resolved, and recorded in the run's config
    data = load_data(cfg)
    pairs = TrainPairs.from_split(data, cfg.data.train_split, cfg.data.max_train_pairs, cfg.seed)
    miner = instantiate(cfg.miner, "miner", _partial_=True)(data=data, pairs=pairs)
    log.info("mining %s for %d training queries of %s (%d documents)", type(miner).__name__,
             len(set(pairs.qids)), data.name, len(data.corpus))
    if getattr(miner, "uses_encoder", True):
        embed = frozen_embed_fn(instantiate(cfg.encoder, "encoder"), int(cfg.eval.batch_size))
    else:
        embed = _no_encoder
    from hnm.cache import activate, from_config

    with activate(from_config(cfg.get("cache"), cfg.paths.cache_dir)) as cache:
        stats = dict(miner.mine(data, pairs, embed, embed) or {})
    stats.update({k.replace("/", "_"): v for k, v in cache.metrics().items()})
    meta = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": data.name, "train_split": cfg.data.train_split,
        "max_train_pairs": cfg.data.max_train_pairs, "seed": cfg.seed,
        "miner": type(miner).__name__, "settings": miner.settings(),
        "miner_config": _container(cfg.miner),
        "encoder": (_container(cfg.encoder) if getattr(miner, "uses_encoder", True)
                    and getattr(miner, "encoder", None) is None else None),
        "telemetry": stats,
    }
    try:
        n = write_negatives(out, miner.records(), meta)
    except OSError as err:  # checked before mining; a disk that filled up meanwhile
        from hnm.errors import DataError
        from hnm.hydra_errors import os_message

        raise DataError(os_message(err, "cannot write the negatives file: ", "output")) from None
    stats = {**stats, "time_mine_total_s": time.perf_counter() - t_start}
    group, name = sweep_info()
    for logger in build_loggers(cfg.get("logger"), str(run_dir()), group, name, resolved(cfg)):
        logger.log_metrics({f"mine/{k}": float(v) for k, v in stats.items()}, step=0)
        logger.finalize("success")
    from hnm.logging_setup import announce

    announce(f"wrote {n} queries' negatives to {out}\n"
             f"train on them with: {train_command(task_overrides(), out)}")
    return out


# overrides of ``hnm mine`` that do not carry over to ``hnm train`` (the miner is replaced by
# the file it wrote; where the file and the run go are the new run's own)
_MINE_ONLY = ("miner", "+miner", "++miner", "output", "+output", "logger", "hydra.", "~")


def train_command(overrides: list[str], out: Path) -> str:
    """The ``hnm train`` line that trains on the mined file with the data, encoder and
    experiment the negatives were mined for (the user's overrides, bar the miner's, the
    output's and the loggers')."""
    import shlex

    kept = [o for o in overrides if not o.startswith(_MINE_ONLY)]
    words = ["hnm", "train", *kept, "+miner=from_file", f"miner.path={out}"]
    return " ".join(shlex.quote(w) for w in words)


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _no_encoder(texts: Any) -> Any:  # pragma: no cover - lexical and file miners never call it
    raise RuntimeError("this miner does not use the encoder")
