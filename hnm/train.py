"""``hnm train``: compose, evaluate zero-shot, fit, evaluate, save, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hnm.callbacks.refresh import MinerRefresh, SamplerRefresh
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError
from hnm.logging_setup import build_loggers, resolved
from hnm.modules.retrieval import RetrievalModule
from hnm.report import before_after_table, print_table
from hnm.runinfo import claim, run_dir, sweep_info, write_json

log = logging.getLogger(__name__)
for _noisy in ("faiss.loader", "sentence_transformers.base.model", "httpx"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def load_data(cfg: DictConfig) -> RetrievalData:
    """Instantiate ``cfg.data.source`` into a :class:`RetrievalData` named ``cfg.data.name``."""
    data: RetrievalData = instantiate(cfg.data.source)
    if cfg.data.get("name"):
        data.name = str(cfg.data.name)
    return data


def build_strategies(cfg: DictConfig) -> list[Any]:
    node = cfg.get("negatives")
    if not node:
        return []
    if "_target_" in node:
        return [instantiate(node)]
    return [instantiate(v) for v in node.values() if v is not None]


def build_evaluator(cfg: DictConfig, data: RetrievalData) -> Any:
    from hnm.eval.evaluator import RetrievalEvaluator

    return instantiate(cfg.eval.evaluator, _partial_=True)(data=data, split=cfg.data.eval_split)


def train(cfg: DictConfig) -> float:
    """Run one experiment; returns ``cfg.optimize_metric`` for sweepers."""
    t_start = time.perf_counter()
    out = run_dir()
    claim(out / "metrics.json", "metrics.json")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    config = resolved(cfg)

    data = load_data(cfg)
    pairs = TrainPairs.from_split(data, cfg.data.train_split, cfg.data.max_train_pairs, cfg.seed)
    log.info("dataset %s: %d training pairs, %d corpus documents, %d %s queries",
             data.name, len(pairs), len(data.corpus), len(data.split(cfg.data.eval_split)),
             cfg.data.eval_split)
    encoder = instantiate(cfg.encoder)
    loss = instantiate(cfg.loss)
    sampler_factory = instantiate(cfg.sampler) if cfg.get("sampler") else None
    miner = instantiate(cfg.miner) if cfg.get("miner") else None
    strategies = build_strategies(cfg)
    evaluator = build_evaluator(cfg, data)

    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    embed = embed_fn(encoder, cfg.eval.batch_size)
    if cfg.eval.zero_shot:
        t0 = time.perf_counter()
        metrics.update(evaluator(embed, embed, "zero_shot"))
        timings["time/zero_shot_eval_s"] = time.perf_counter() - t0

    if miner is not None:
        t0 = time.perf_counter()
        stats = miner.mine(data, pairs, embed, embed) or {}
        timings["time/mine_s"] = time.perf_counter() - t0
        metrics.update({f"mine/{k}": float(v) for k, v in stats.items()
                        if isinstance(v, (int, float))})

    dm = RetrievalDataModule(pairs, cfg.batch_size, sampler_factory, seed=cfg.seed,
                             drop_last=cfg.data.get("drop_last", False))
    module = RetrievalModule(encoder=encoder, loss=loss, pairs=pairs, miner=miner,
                             negatives=strategies, **cfg.module)
    group, name = sweep_info()
    loggers = build_loggers(cfg.get("logger"), str(out), group, name, config)
    callbacks: list[L.Callback] = [SamplerRefresh(dm.batch_sampler, cfg.eval.batch_size)]
    if miner is not None:
        callbacks.append(MinerRefresh(miner, cfg.eval.batch_size))
    callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
        dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0))
    trainer: L.Trainer = instantiate(cfg.trainer, _partial_=True)(
        logger=loggers or False, callbacks=callbacks, default_root_dir=str(out))
    resume = cfg.get("resume")
    if resume and not Path(str(resume)).expanduser().is_file():
        raise ConfigError(f"resume={resume}: no such checkpoint file")
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(Path(str(resume)).expanduser())
                if resume else None)
    timings["time/fit_s"] = time.perf_counter() - t0
    timings["time/train_step_s"] = module.timings["train_step_s"]
    timings["time/refresh_s"] = module.timings["refresh_s"]

    if trainer.is_global_zero:
        t0 = time.perf_counter()
        metrics.update(evaluator(embed, embed, "test"))
        timings["time/test_eval_s"] = time.perf_counter() - t0
        model_dir = claim(out / "model", "a saved model")
        encoder.save(str(model_dir))
        timings["time/total_s"] = time.perf_counter() - t_start
        metrics.update(timings)
        metrics["train/pairs"] = float(len(pairs))
        metrics["train/steps"] = float(trainer.global_step)
        for logger in loggers:
            logger.log_metrics({k: v for k, v in metrics.items()}, step=trainer.global_step)
            logger.finalize("success")
        write_json(out / "metrics.json", metrics)
        (out / "config.yaml").exists() or (out / "config.yaml").write_text(
            OmegaConf.to_yaml(cfg, resolve=True))
        print_table(before_after_table(metrics, data.name))
        print(f"run folder: {out}")
    key = str(cfg.optimize_metric)
    if "/" not in key:
        key = f"test/{data.name}/{key}"
    if key not in metrics:
        raise ConfigError(f"optimize_metric={key!r} is not among the run's metrics: "
                          f"{', '.join(sorted(k for k in metrics if '/' in k)[:12])}, …")
    return float(metrics[key])
