"""``hnm train``: build the parts, evaluate zero-shot, fit, evaluate, save, report.

:func:`train` runs four steps around one :class:`Run` that holds the parts:
:func:`build` (instantiate everything, nothing heavy), :func:`prepare` (zero-shot evaluation,
first mining), :func:`fit` (``trainer.fit``) and :func:`report` (final evaluation, model,
``metrics.json``), with the loggers finalised and the DDP relaunch state restored in
``finally`` whatever happened. Tests drive the same steps to look inside a real run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from hnm import checkpoint as ckpt_io
from hnm.cache import EmbeddingCache, activate, frozen_embed_fn
from hnm.cache import from_config as cache_from_config
from hnm.callbacks.checkpoint import RunCheckpoint, StopRequest, interrupts
from hnm.callbacks.curve import TrainCurve
from hnm.callbacks.progress import progress_lines
from hnm.callbacks.refresh import MinerRefresh, SamplerRefresh
from hnm.compare.files import write_eval_outputs
from hnm.config_check import check_kwargs, check_node, instantiate
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.dist import env_rank, finish_relaunch, prepare_relaunch
from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError
from hnm.logging_setup import build_loggers, resolved
from hnm.modules.retrieval import RetrievalModule
from hnm.modules.telemetry import time_split
from hnm.precision import choose as choose_precision
from hnm.report import before_after_table, print_table
from hnm.runinfo import (
    atomic_path,
    claim,
    run_dir,
    sweep_info,
    write_json,
    write_status,
    write_text,
)
from hnm.strategy_report import check_can_act, effect_metrics, warn_no_effect
from hnm.types import ConfiguresModule, EmbedFn, ProvidesMiner, SavesModels

log = logging.getLogger(__name__)
# the config groups whose nodes are instantiated (checked against their signatures first)
GROUPS = ("data", "encoder", "loss", "sampler", "miner", "negatives", "eval", "trainer", "poison")
for _noisy in ("faiss.loader", "sentence_transformers.base.model", "httpx"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def load_data(cfg: DictConfig) -> RetrievalData:
    """Instantiate ``cfg.data.source`` into a :class:`RetrievalData` named ``cfg.data.name``."""
    data: RetrievalData = instantiate(cfg.data.source, "data.source")
    if cfg.data.get("name"):
        data.name = str(cfg.data.name)
    return data


def build_named_strategies(cfg: DictConfig) -> dict[str, Any]:
    """The negatives strategies by config name (the class name for a bare ``_target_`` node),
    in the order they apply."""
    node = cfg.get("negatives")
    if not node:
        return {}
    if "_target_" in node:
        return {str(node["_target_"]).rsplit(".", 1)[-1]: instantiate(node, "negatives")}
    return {str(k): instantiate(node._get_node(k), f"negatives.{k}")
            for k, v in node.items() if v is not None}


def build_strategies(cfg: DictConfig) -> list[Any]:
    return list(build_named_strategies(cfg).values())


def build_evaluator(cfg: DictConfig, data: RetrievalData, poisoning: Any = None) -> Any:
    evaluator = instantiate(cfg.eval.evaluator, "eval.evaluator", _partial_=True)(data=data,
                                                                split=cfg.data.eval_split)
    if poisoning is not None:  # +poison=…: also the triggered queries and the attack metrics
        from hnm.poison import PoisonEvaluator

        evaluator = PoisonEvaluator(evaluator, poisoning)
    return evaluator


def poison_data(cfg: DictConfig, data: RetrievalData, pairs: TrainPairs, out: Path
                ) -> tuple[RetrievalData, TrainPairs, Any]:
    """``+poison=…``: attacker passages and poisoned pairs, before any sampler or miner sees
    the data; the record in ``poison.json``. Without ``cfg.poison``, everything as it was."""
    if not cfg.get("poison"):
        return data, pairs, None
    from hnm.poison import write_record

    poisoning = instantiate(cfg.poison, "poison")
    data, pairs, record = poisoning.poison(data, pairs, str(cfg.data.train_split))
    if env_rank() == 0:
        write_record(record, out / "poison.json")
    return data, pairs, poisoning


@dataclass
class Run:
    """The parts of one ``hnm train`` run and what it measured so far."""

    cfg: DictConfig
    out: Path
    data: RetrievalData
    pairs: TrainPairs
    encoder: Any
    miner: Any
    strategies: list[Any]
    strategy_names: list[str]
    evaluator: Any
    embed: EmbedFn
    dm: RetrievalDataModule
    module: RetrievalModule
    loggers: list[Any]
    trainer: L.Trainer
    sampler_refresh: SamplerRefresh
    t_start: float
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    finished: bool = False
    miner_from_sampler: bool = False
    # the starting encoder's frozen-weight embedder (zero-shot evaluation, first mining),
    # through the embedding cache; ``embed`` (current weights, never cached) serves the rest
    start_embed: EmbedFn | None = None
    cache: EmbeddingCache | None = None
    # resume=…: the checkpoint file and its hnm state (None for a fresh run)
    resume_path: Path | None = None
    resume_state: dict[str, Any] | None = None
    checkpoints: RunCheckpoint | None = None
    stop: StopRequest = field(default_factory=StopRequest)

    def parts(self) -> dict[str, Any]:
        """Configured strategies by report name: ``sampler``, ``miner``, ``negatives/<name>``,
        ``loss`` (only those the user added, and the loss)."""
        out: dict[str, Any] = {}
        if self.cfg.get("sampler"):
            out["sampler"] = self.dm.batch_sampler
        if self.cfg.get("miner") and self.miner is not None:
            out["miner"] = self.miner
        for name, s in zip(self.strategy_names, self.strategies):
            out[f"negatives/{name}"] = s
        out["loss"] = self.module.loss_fn
        return out


def build(cfg: DictConfig, data: RetrievalData | None = None) -> Run:
    """Instantiate every part of the run (no encoding yet); ``data`` replaces ``cfg.data``'s
    source (tests plant their own)."""
    t_start = time.perf_counter()
    out = run_dir()
    claim(out / "metrics.json", "metrics.json")
    choose_precision(cfg, out)  # `auto` resolved and recorded before anything compares configs
    resume_path, resume_ckpt = None, None
    if cfg.get("resume"):
        resume_path = ckpt_io.resolve(cfg.resume)
        resume_ckpt = ckpt_io.load(resume_path)
        ckpt_io.check_compatible(resume_path, resume_ckpt, cfg)
    if env_rank() == 0:
        write_status(out, "running", **({"resumed_from": str(resume_path)} if resume_path
                                        else {}))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    config = resolved(cfg)

    for key in GROUPS:  # a mistyped key or value fails now, before any data is read
        if cfg.get(key) is not None:
            check_node(cfg._get_node(key), key)
    check_kwargs("module", dict(cfg.module), RetrievalModule)
    data = load_data(cfg) if data is None else data
    pairs = TrainPairs.from_split(data, cfg.data.train_split, cfg.data.max_train_pairs, cfg.seed)
    data, pairs, poisoning = poison_data(cfg, data, pairs, out)
    log.info("dataset %s: %d training pairs, %d corpus documents, %d %s queries",
             data.name, len(pairs), len(data.corpus), len(data.split(cfg.data.eval_split)),
             cfg.data.eval_split)
    if cfg.data.get("leakage_check", False):
        from hnm.data.leakage import warn_leakage

        warn_leakage(data, pairs, cfg.data.eval_split)
    encoder = instantiate(cfg.encoder, "encoder")
    loss = instantiate(cfg.loss, "loss")
    sampler_factory = instantiate(cfg.sampler, "sampler") if cfg.get("sampler") else None
    miner = instantiate(cfg.miner, "miner") if cfg.get("miner") else None
    named = build_named_strategies(cfg)
    strategies = list(named.values())
    evaluator = build_evaluator(cfg, data, poisoning)
    dm = RetrievalDataModule(pairs, cfg.batch_size, sampler_factory, seed=cfg.seed,
                             drop_last=cfg.data.get("drop_last", False))
    from_sampler = miner is None and isinstance(dm.batch_sampler, ProvidesMiner)
    if from_sampler:
        miner = dm.batch_sampler.as_miner()  # type: ignore[union-attr]  # TAS-B's negatives
    module = RetrievalModule(encoder=encoder, loss=loss, pairs=pairs, miner=miner,
                             negatives=strategies, **cfg.module)
    if isinstance(miner, ConfiguresModule):
        miner.configure_module(module)  # e.g. ADORE's frozen document encoder
    group, name = sweep_info()
    loggers = build_loggers(cfg.get("logger"), str(out), group, name, config)
    sampler_refresh = SamplerRefresh(dm.batch_sampler, cfg.eval.batch_size)
    dm.before_first_batches.append(sampler_refresh.prepare)
    callbacks: list[L.Callback] = [sampler_refresh]
    if miner is not None:
        callbacks.append(MinerRefresh(miner, cfg.eval.batch_size))
    curve = TrainCurve(out / "train_curve.csv")
    if resume_ckpt is not None:
        curve.resume_step = int(resume_ckpt["hnm"]["position"]["global_step"])
    callbacks.append(curve)
    stop = StopRequest()
    ck = dict(cfg.get("checkpoint") or {})
    checkpoints = RunCheckpoint(out / "checkpoints", state=None,
                                every_n_steps=ck.get("every_n_steps", 1000),
                                every_minutes=ck.get("every_minutes", 30.0),
                                keep=ck.get("keep", 2), request=stop)
    callbacks.insert(0, checkpoints)  # first: a resume's restore precedes every refresh
    lines = progress_lines(cfg.get("progress"), cfg.trainer)  # logs that are not a terminal
    if lines is not None:
        callbacks.append(lines)
    trainer: L.Trainer = instantiate(cfg.trainer, "trainer", _partial_=True)(
        logger=loggers or False, callbacks=callbacks, default_root_dir=str(out),
        enable_checkpointing=False,  # RunCheckpoint writes them (atomically, with hnm's state)
        **({"enable_progress_bar": False} if lines is not None else {}))
    run = Run(cfg=cfg, out=out, data=data, pairs=pairs, encoder=encoder, miner=miner,
              strategies=strategies, strategy_names=list(named), evaluator=evaluator,
              embed=embed_fn(encoder, cfg.eval.batch_size), dm=dm, module=module,
              loggers=loggers, trainer=trainer, sampler_refresh=sampler_refresh,
              t_start=t_start, miner_from_sampler=from_sampler and miner is not None,
              start_embed=frozen_embed_fn(encoder, cfg.eval.batch_size),
              cache=cache_from_config(cfg.get("cache"), cfg.paths.cache_dir),
              resume_path=resume_path,
              resume_state=None if resume_ckpt is None else resume_ckpt["hnm"],
              checkpoints=checkpoints, stop=stop)
    checkpoints.state = lambda batches_done: ckpt_io.run_state(run, batches_done)
    module.after_batch.append(checkpoints.after_batch)
    check_can_act(run.parts(), trainer, len(dm.batch_sampler))
    return run


def prepare(run: Run) -> None:
    """Before training: the zero-shot evaluation (rank 0) and the miner's first mining, both
    with the starting weights (served from the embedding cache where it holds them)."""
    cfg, embed = run.cfg, run.start_embed or run.embed
    if run.resume_state is not None:  # resumed: the parts' state replaces the first mining
        restore_resumed(run)
        return
    if cfg.eval.zero_shot and env_rank() == 0:  # other DDP ranks: nothing to report
        t0 = time.perf_counter()
        run.metrics.update(run.evaluator(embed, embed, "zero_shot"))
        write_eval_outputs(run.evaluator, run.out, "zero_shot")
        run.timings["time/zero_shot_eval_s"] = time.perf_counter() - t0
    if run.miner is not None and not run.miner_from_sampler:  # TAS-B's come with its refresh
        t0 = time.perf_counter()
        stats = run.miner.mine(run.data, run.pairs, embed, embed) or {}
        run.timings["time/mine_s"] = time.perf_counter() - t0
        run.metrics.update({f"mine/{k}": float(v) for k, v in stats.items()
                            if isinstance(v, (int, float))})
    run.module.timings["mine_s"] = run.timings.get("time/mine_s", 0.0)  # in time/refresh_frac


def restore_resumed(run: Run) -> None:
    """A resumed run: every part back to the checkpoint's state, the epoch's first batches
    (those already trained on) to be skipped, the random generators set when training
    starts again."""
    state = run.resume_state
    assert state is not None
    ckpt_io.restore_parts(run, state)
    done = int(state["position"]["batches_done"])
    if done < len(run.dm.batch_sampler):  # mid-epoch (at its end Lightning moves on)
        run.dm.skip_first(done, after=lambda: ckpt_io.restore_sampler(run, state))
    assert run.checkpoints is not None
    from hnm.state import set_rng_state

    def again() -> None:  # at the first batch, after the resumed epoch's start hooks
        ckpt_io.restore_parts(run, state)
        set_rng_state(state["rng"])

    run.checkpoints.restore_at_first_batch = again
    log.info("resuming from %s: epoch %d, %d batches of it done, step %d", run.resume_path,
             state["position"]["epoch"], done, state["position"]["global_step"])


def fit(run: Run) -> None:
    """``trainer.fit`` (from the checkpoint when resuming); Ctrl-C and SIGTERM save a
    checkpoint and stop (:func:`interrupted`)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    prepare_relaunch(run.trainer)  # DDP: the other ranks re-run this very job
    t0 = time.perf_counter()
    try:
        with interrupts(run.stop):
            run.trainer.fit(run.module, datamodule=run.dm, ckpt_path=None if
                            run.resume_path is None else str(run.resume_path),
                            weights_only=True)  # a checkpoint never runs code
    except SIGTERMException:
        run.stop.signum = run.stop.signum or 15
    run.timings["time/fit_s"] = time.perf_counter() - t0
    if run.stop.signum is not None:
        interrupted(run)
    finish_relaunch()  # DDP launcher: close the process group before the next job of a sweep
    run.timings.update({f"time/{k}": v for k, v in time_split(run.module.timings).items()})


def interrupted(run: Run) -> None:
    """Stopped by a signal: the checkpoint is written; say how to continue and exit 128+N."""
    import shlex
    import signal
    import sys

    signum = int(run.stop.signum or signal.SIGTERM)
    name = signal.Signals(signum).name
    command = f"hnm train resume={shlex.quote(str(run.out))}"
    if run.trainer.is_global_zero:
        saved = run.checkpoints.interrupted_at if run.checkpoints else None
        write_status(run.out, "interrupted", signal=name, step=int(run.trainer.global_step),
                     checkpoint=str(saved) if saved else None, resume=command)
        print(f"\nhnm: {name} at step {run.trainer.global_step}: checkpoint "
              f"{saved or '(none: stopped before the first step)'}; continue with:\n"
              f"{command}", file=sys.stderr, flush=True)
    finish_relaunch()
    raise SystemExit(128 + signum)


def report(run: Run) -> float:
    """Rank 0: final evaluation, the saved model, ``metrics.json``, the table; returns
    ``cfg.optimize_metric`` (NaN on the other DDP ranks)."""
    cfg, trainer, out, metrics = run.cfg, run.trainer, run.out, run.metrics
    if not trainer.is_global_zero:  # another DDP rank: rank 0 evaluates, saves and reports
        return float("nan")
    t0 = time.perf_counter()
    doc_model = run.module.doc_encoder  # ADORE: the corpus side stays the frozen encoder
    doc_embed = (run.embed if doc_model is None  # ADORE's frozen document encoder: cached
                 else frozen_embed_fn(doc_model, cfg.eval.batch_size))
    metrics.update(run.evaluator(run.embed, doc_embed, "test"))
    write_eval_outputs(run.evaluator, out, "test")
    run.timings["time/test_eval_s"] = time.perf_counter() - t0
    with atomic_path(claim(out / "model", "a saved model")) as tmp:  # complete or absent
        run.encoder.save(str(tmp))
    if doc_model is not None:
        with atomic_path(claim(out / "doc_model", "a saved model")) as tmp:
            doc_model.save(str(tmp))
    if isinstance(run.miner, SavesModels):  # AR2's ranker, beside the model (ranker/)
        run.miner.save_models(out)
    run.timings["time/total_s"] = time.perf_counter() - run.t_start
    metrics.update(run.timings)
    metrics.update(run.cache.metrics() if run.cache is not None else
                   {"cache/encoded_texts": 0.0, "cache/cached_texts": 0.0})
    metrics["train/pairs"] = float(len(run.pairs))
    metrics["train/steps"] = float(trainer.global_step)
    effects = effect_metrics(run.parts())
    metrics.update(effects)
    for logger in run.loggers:
        logger.log_metrics(dict(metrics), step=trainer.global_step)
    write_json(out / "metrics.json", metrics)
    if not (out / "config.yaml").exists():
        write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    print_table(before_after_table(metrics, run.data.name, split=str(cfg.data.eval_split)))
    warn_no_effect(effects, list(run.parts()))
    print(f"run folder: {out}")
    write_status(out, "finished")
    run.finished = True
    key = str(cfg.optimize_metric)
    if "/" not in key:
        key = f"test/{run.data.name}/{key}"
    if key not in metrics:
        raise ConfigError(f"optimize_metric={key!r} is not among the run's metrics: "
                          f"{', '.join(sorted(k for k in metrics if '/' in k)[:12])}, …")
    return float(metrics[key])


def cleanup(run: Run) -> None:
    """Finalise the loggers (each W&B run closed, so the next job of a sweep gets its own) and
    restore the DDP relaunch state, whatever happened."""
    finish_relaunch()
    if not run.trainer.is_global_zero:
        return
    for logger in run.loggers:
        try:
            logger.finalize("success" if run.finished else "failed")
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.finish(exit_code=0 if run.finished else 1)
        except Exception as err:  # noqa: BLE001 - a logger's failure must not hide the run's
            log.warning("closing logger %s failed: %s", type(logger).__name__, err)


def train(cfg: DictConfig) -> float:
    """Run one experiment; returns ``cfg.optimize_metric`` for sweepers."""
    run = build(cfg)
    try:
        with activate(run.cache or EmbeddingCache(embeddings=False, in_run=False)):
            prepare(run)
            fit(run)
            return report(run)
    finally:
        cleanup(run)
