"""``hnm train``: compose, evaluate zero-shot, fit, evaluate, save, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hnm.callbacks.curve import TrainCurve
from hnm.callbacks.refresh import MinerRefresh, SamplerRefresh
from hnm.compare.files import write_eval_outputs
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.dist import env_rank, finish_relaunch, prepare_relaunch
from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError
from hnm.logging_setup import build_loggers, resolved
from hnm.modules.retrieval import RetrievalModule
from hnm.modules.telemetry import time_split
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
    if cfg.data.get("leakage_check", False):
        from hnm.data.leakage import warn_leakage

        warn_leakage(data, pairs, cfg.data.eval_split)
    encoder = instantiate(cfg.encoder)
    loss = instantiate(cfg.loss)
    sampler_factory = instantiate(cfg.sampler) if cfg.get("sampler") else None
    miner = instantiate(cfg.miner) if cfg.get("miner") else None
    strategies = build_strategies(cfg)
    evaluator = build_evaluator(cfg, data)

    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    embed = embed_fn(encoder, cfg.eval.batch_size)
    if cfg.eval.zero_shot and env_rank() == 0:  # other DDP ranks: nothing to report
        t0 = time.perf_counter()
        metrics.update(evaluator(embed, embed, "zero_shot"))
        write_eval_outputs(evaluator, out, "zero_shot")
        timings["time/zero_shot_eval_s"] = time.perf_counter() - t0

    if miner is not None:
        t0 = time.perf_counter()
        stats = miner.mine(data, pairs, embed, embed) or {}
        timings["time/mine_s"] = time.perf_counter() - t0
        metrics.update({f"mine/{k}": float(v) for k, v in stats.items()
                        if isinstance(v, (int, float))})

    dm = RetrievalDataModule(pairs, cfg.batch_size, sampler_factory, seed=cfg.seed,
                             drop_last=cfg.data.get("drop_last", False))
    as_miner = getattr(dm.batch_sampler, "as_miner", None)
    if miner is None and as_miner is not None:
        miner = as_miner()  # a sampler that picks explicit negatives (tas_balanced)
    module = RetrievalModule(encoder=encoder, loss=loss, pairs=pairs, miner=miner,
                             negatives=strategies, **cfg.module)
    if miner is not None and hasattr(miner, "configure_module"):
        miner.configure_module(module)  # e.g. ADORE's frozen document encoder
    module.timings["mine_s"] = timings.get("time/mine_s", 0.0)  # in time/refresh_frac
    group, name = sweep_info()
    loggers = build_loggers(cfg.get("logger"), str(out), group, name, config)
    callbacks: list[L.Callback] = [SamplerRefresh(dm.batch_sampler, cfg.eval.batch_size)]
    if miner is not None:
        callbacks.append(MinerRefresh(miner, cfg.eval.batch_size))
    callbacks.append(TrainCurve(out / "train_curve.csv"))
    callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
        dirpath=str(out / "checkpoints"), save_last=True, save_top_k=0))
    trainer: L.Trainer = instantiate(cfg.trainer, _partial_=True)(
        logger=loggers or False, callbacks=callbacks, default_root_dir=str(out))
    resume = cfg.get("resume")
    if resume and not Path(str(resume)).expanduser().is_file():
        raise ConfigError(f"resume={resume}: no such checkpoint file")
    prepare_relaunch(trainer)  # DDP: the other ranks re-run this very job
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(Path(str(resume)).expanduser())
                if resume else None)
    timings["time/fit_s"] = time.perf_counter() - t0
    finish_relaunch()  # DDP launcher: close the process group before the next job of a sweep
    timings.update({f"time/{k}": v for k, v in time_split(module.timings).items()})

    if trainer.is_global_zero:
        t0 = time.perf_counter()
        doc_model = module.doc_encoder  # ADORE: the corpus side stays the frozen encoder
        doc_embed = embed if doc_model is None else embed_fn(doc_model, cfg.eval.batch_size)
        metrics.update(evaluator(embed, doc_embed, "test"))
        write_eval_outputs(evaluator, out, "test")
        timings["time/test_eval_s"] = time.perf_counter() - t0
        model_dir = claim(out / "model", "a saved model")
        encoder.save(str(model_dir))
        if doc_model is not None:
            doc_model.save(str(claim(out / "doc_model", "a saved model")))
        timings["time/total_s"] = time.perf_counter() - t_start
        metrics.update(timings)
        metrics["train/pairs"] = float(len(pairs))
        metrics["train/steps"] = float(trainer.global_step)
        for logger in loggers:
            logger.log_metrics({k: v for k, v in metrics.items()}, step=trainer.global_step)
            logger.finalize("success")
            if type(logger).__name__ == "WandbLogger":  # the next run of a sweep gets its own
                logger.experiment.finish()
        write_json(out / "metrics.json", metrics)
        (out / "config.yaml").exists() or (out / "config.yaml").write_text(
            OmegaConf.to_yaml(cfg, resolve=True))
        print_table(before_after_table(metrics, data.name, split=str(cfg.data.eval_split)))
        print(f"run folder: {out}")
    else:  # another DDP rank: rank 0 evaluates, saves and reports
        return float("nan")
    key = str(cfg.optimize_metric)
    if "/" not in key:
        key = f"test/{data.name}/{key}"
    if key not in metrics:
        raise ConfigError(f"optimize_metric={key!r} is not among the run's metrics: "
                          f"{', '.join(sorted(k for k in metrics if '/' in k)[:12])}, …")
    return float(metrics[key])
