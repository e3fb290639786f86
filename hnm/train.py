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
from hnm import counting, dashboards, knobs
from hnm.cache import EmbeddingCache, activate, frozen_embed_fn
from hnm.cache import from_config as cache_from_config
from hnm.callbacks.checkpoint import RunCheckpoint, StopRequest, interrupts
from hnm.callbacks.curve import TrainCurve
from hnm.callbacks.progress import progress_lines
from hnm.callbacks.val_curve import ValCurve
from hnm.compare.files import write_eval_outputs
from hnm.config_check import check_kwargs, check_node, instantiate
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.dist import env_rank, finish_relaunch, prepare_relaunch
from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError, HnmError, StartRefused, check_range
from hnm.logging_setup import announce, build_loggers, resolved
from hnm.modules.retrieval import RetrievalModule
from hnm.parts import RunParts
from hnm.precision import choose as choose_precision
from hnm.precision import record as record_precision
from hnm.report import before_after_table, next_step, print_table
from hnm.runcontext import (
    CONTEXT_FILE,
    LoadMonitor,
    data_context,
    fingerprint,
    hydra_choices,
    machine,
    run_label,
    strategy_name,
)
from hnm.runinfo import (
    atomic_path,
    claim,
    job_number,
    run_dir,
    sweep_info,
    task_overrides,
    write_json,
    write_status,
    write_text,
)
from hnm.strategy_report import check_can_act, effect_metrics, warn_no_effect
from hnm.types import EmbedFn, ProvidesMiner, SavesModels

log = logging.getLogger(__name__)
# the config groups whose nodes are instantiated (checked against their signatures first)
GROUPS = ("data", "encoder", "loss", "sampler", "miner", "negatives", "eval", "trainer", "poison")


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
    parts: RunParts
    evaluator: Any
    embed: EmbedFn
    dm: RetrievalDataModule
    module: RetrievalModule
    loggers: list[Any]
    trainer: L.Trainer
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
    # what the run's numbers depend on besides its config (context.json), the learning
    # curve, the machine's load and the texts counted without gradient at the start
    context: dict[str, Any] = field(default_factory=dict)
    val_curve: ValCurve | None = None
    load: LoadMonitor | None = None
    nograd_start: int = 0
    grad_start: int = 0
    eval_texts: int = 0

    @property
    def split(self) -> str:
        """The evaluated split: the stage name of the final evaluation's metric keys."""
        return str(self.cfg.data.eval_split)

    @property
    def miner(self) -> Any:
        """The run's miner (``+miner``, or the batch sampler's own negatives), or None."""
        return self.parts.miner


def run_context(cfg: DictConfig, data: RetrievalData, pairs: TrainPairs, evaluator: Any,
                encoder: Any) -> dict[str, Any]:
    """The run's strategy, dashboard name and group, data fingerprints and machine
    (``context.json``; the W&B/TensorBoard names and tags)."""
    from hnm.cache import weights_fingerprint

    strategy = strategy_name(OmegaConf.to_container(cfg, resolve=False),  # type: ignore
                             hydra_choices())
    sweep_group, _ = sweep_info()
    job = job_number()
    knobs = [o for o in task_overrides() if "." in o.split("=", 1)[0]
             and not o.lstrip("+~").startswith(("eval.", "data.eval_split", "group"))]
    # a sweep over knobs (Optuna, an lr grid): the job number tells its runs apart
    name = run_label(strategy, cfg.seed) + (f" #{job}" if job is not None and knobs else "")
    fp = weights_fingerprint(encoder)
    return {"strategy": strategy, "name": name, "seed": cfg.seed,
            "encoder_fp": fp[:16] if fp else None,
            "group": str(cfg.get("group") or sweep_group or "") or None,
            "overrides": " ".join(task_overrides()),
            **data_context(data, pairs, str(cfg.data.eval_split), list(evaluator.qids)),
            "machine": machine()}


def build_val_curve(cfg: DictConfig, data: RetrievalData, out: Path) -> ValCurve | None:
    """``eval.every_n_steps=N``: the learning curve's evaluator on a fixed subset of
    ``eval.val_split`` (``eval.val_queries`` queries, ``eval.val_corpus`` documents)."""
    every = cfg.eval.get("every_n_steps")
    if every is None:
        return None
    from hnm.eval.subset import eval_subset

    ev = cfg.eval
    for key in ("every_n_steps", "val_queries", "val_corpus"):
        value = ev.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"eval.{key}={value!r} is not valid; expected an integer >= 1")
        if value is not None:
            check_range(f"eval.{key}", value, 1)
    subset = eval_subset(data, str(ev.get("val_split") or "dev"), ev.get("val_queries"),
                         ev.get("val_corpus"), int(ev.evaluator.get("seed") or 0))
    evaluator = instantiate(ev.evaluator, "eval.evaluator", _partial_=True)(
        data=subset, split=str(ev.get("val_split") or "dev"), max_queries=None)
    batch = int(ev.batch_size)

    def embedders(module: Any) -> tuple[EmbedFn, EmbedFn]:
        doc = module.doc_encoder
        return (embed_fn(module.encoder, batch, progress=False),
                embed_fn(module.encoder, batch, progress=False) if doc is None
                else frozen_embed_fn(doc, batch, progress=False))

    curve = ValCurve(evaluator, int(every), out / "val_curve.csv", embedders)
    curve.fingerprint = fingerprint([str(ev.get("val_split") or "dev"),
                                     *sorted(subset.queries), "|", *sorted(subset.corpus)])
    return curve


def build(cfg: DictConfig, data: RetrievalData | None = None) -> Run:
    """Instantiate every part of the run (no encoding yet); ``data`` replaces ``cfg.data``'s
    source (tests plant their own)."""
    t_start = time.perf_counter()
    out = run_dir()
    knobs.check(cfg)  # also where Hydra's preflight did not run (a sweep's job, a test)
    # `auto` resolved before anything compares configs; written to the run's config once the
    # start is accepted (a refused start writes nothing)
    resolved_precision = choose_precision(cfg)
    resume_path, resume_ckpt = None, None
    try:  # nothing is written before these pass: a refusal leaves the folder as it was
        claim(out / "metrics.json", "metrics.json")
        if cfg.get("resume"):
            resume_path = ckpt_io.resolve(cfg.resume)
            resume_ckpt = ckpt_io.load(resume_path)
            ckpt_io.check_compatible(resume_path, resume_ckpt, cfg)
    except HnmError as err:
        raise StartRefused(str(err)) from None
    if resolved_precision:
        record_precision(out, resolved_precision)
    if env_rank() == 0 and resume_path is None:  # a resume: once it is built (below)
        write_status(out, "running")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    config = resolved(cfg)

    for key in GROUPS:  # a mistyped key or value fails now, before any data is read
        if cfg.get(key) is not None:
            check_node(cfg._get_node(key), key)
    check_kwargs("module", dict(cfg.module), RetrievalModule)
    data = load_data(cfg) if data is None else data
    pairs = TrainPairs.from_split(data, cfg.data.train_split, cfg.data.max_train_pairs, cfg.seed)
    drawn = pairs  # the context fingerprints the pairs drawn, before any poisoning
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
    miner = (instantiate(cfg.miner, "miner", _partial_=True)(data=data, pairs=pairs)
             if cfg.get("miner") else None)
    named = build_named_strategies(cfg)
    strategies = list(named.values())
    evaluator = build_evaluator(cfg, data, poisoning)
    dm = RetrievalDataModule(pairs, cfg.batch_size, sampler_factory, seed=cfg.seed,
                             drop_last=cfg.data.get("drop_last", False))
    if len(dm.batch_sampler) == 0:  # a run that would train zero steps
        raise ConfigError(f"no training batch: {len(pairs)} training pairs make no full batch "
                          f"of batch_size={cfg.batch_size} with data.drop_last=true; lower "
                          "batch_size or set data.drop_last=false")
    from_sampler = miner is None and isinstance(dm.batch_sampler, ProvidesMiner)
    if from_sampler:
        miner = dm.batch_sampler.as_miner()  # type: ignore[attr-defined]  # TAS-B's negatives
    parts = RunParts(sampler=dm.batch_sampler, loss=loss, miner=miner, negatives=named,
                     configured=tuple(k for k in ("sampler", "miner") if cfg.get(k)))
    parts.check_stateful()
    cache = cache_from_config(cfg.get("cache"), cfg.paths.cache_dir)
    stop = StopRequest()
    ck = dict(cfg.get("checkpoint") or {})
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}
    checkpoints = RunCheckpoint(out / "checkpoints", state=ckpt_io.RunState(parts, cfg, metrics,
                                                                            timings),
                                every_n_steps=ck.get("every_n_steps", 1000),
                                every_minutes=ck.get("every_minutes", 30.0),
                                keep=ck.get("keep", 2), request=stop)
    module = RetrievalModule(encoder=encoder, loss=loss, pairs=pairs, miner=miner,
                             negatives=strategies, sampler=dm.batch_sampler,
                             hooks=[checkpoints], cache=cache,
                             refresh_batch_size=cfg.eval.batch_size, **cfg.module)
    context = run_context(cfg, data, drawn, evaluator, encoder)
    loggers = build_loggers(cfg.get("logger"), str(out), context["group"], context["name"],
                            {**config, "strategy": context["strategy"],
                             "overrides": context["overrides"]},
                            dashboards.tags(context["strategy"], config))
    # first: a resume's restore precedes every other callback of the first batch
    callbacks: list[L.Callback] = [checkpoints]
    val_curve = build_val_curve(cfg, data, out)
    if val_curve is not None:
        callbacks.append(val_curve)
        context["val_fp"] = val_curve.fingerprint
    curve = TrainCurve(out / "train_curve.csv")
    if resume_ckpt is not None:
        curve.resume_step = int(resume_ckpt["hnm"]["position"]["global_step"])
        if val_curve is not None:
            val_curve.resume_step = curve.resume_step
    callbacks.append(curve)
    lines = progress_lines(cfg.get("progress"), cfg.trainer)  # logs that are not a terminal
    if lines is not None:
        callbacks.append(lines)
    trainer: L.Trainer = instantiate(cfg.trainer, "trainer", _partial_=True)(
        logger=loggers or False, callbacks=callbacks, default_root_dir=str(out),
        enable_checkpointing=False,  # RunCheckpoint writes them (atomically, with hnm's state)
        **({"enable_progress_bar": False} if lines is not None else {}))
    run = Run(cfg=cfg, out=out, data=data, pairs=pairs, encoder=encoder, parts=parts,
              evaluator=evaluator, metrics=metrics, timings=timings,
              embed=embed_fn(encoder, cfg.eval.batch_size), dm=dm, module=module,
              loggers=loggers, trainer=trainer, t_start=t_start,
              miner_from_sampler=from_sampler and miner is not None,
              start_embed=frozen_embed_fn(encoder, cfg.eval.batch_size), cache=cache,
              resume_path=resume_path,
              resume_state=None if resume_ckpt is None else resume_ckpt["hnm"],
              checkpoints=checkpoints, stop=stop, context=context, val_curve=val_curve,
              load=LoadMonitor().start(), nograd_start=counting.nograd_texts(),
              grad_start=counting.grad_texts())
    check_can_act(parts.reported(), trainer, len(dm.batch_sampler))
    if env_rank() == 0 and resume_path is not None:  # until now a failure left its status
        write_status(out, "running", resumed_from=str(resume_path))
    return run


def prepare(run: Run) -> None:
    """Before training: the zero-shot evaluation (rank 0) and the miner's first mining, both
    with the starting weights (served from the embedding cache where it holds them)."""
    cfg, embed = run.cfg, run.start_embed or run.embed
    if run.resume_state is not None:  # resumed: the parts' state replaces the first mining
        restore_resumed(run)
        return
    if cfg.eval.zero_shot and env_rank() == 0:  # other DDP ranks: nothing to report
        t0, n0 = time.perf_counter(), counting.thread_texts()
        zero_shot = run.evaluator(embed, embed, "zero_shot")
        run.eval_texts += counting.thread_texts() - n0
        run.metrics.update(zero_shot)
        write_eval_outputs(run.evaluator, run.out, "zero_shot")
        run.timings["time/zero_shot_eval_s"] = time.perf_counter() - t0
        dashboards.log_at(run.loggers, zero_shot, step=0)  # the curves' starting point
    if run.miner is not None and not run.miner_from_sampler:  # TAS-B's come with its refresh
        stats = run.module.refresher.mine(run.miner, run.data, run.pairs, embed)
        run.timings["time/mine_s"] = run.module.clock.mine_s  # also in time/refresh_frac
        run.metrics.update({f"mine/{k}": float(v) for k, v in stats.items()
                            if isinstance(v, (int, float))})


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
    # the learning curve's evaluations run inside fit; they are evaluation, not training
    curve_s = run.val_curve.seconds if run.val_curve is not None else 0.0
    run.timings["time/fit_s"] = time.perf_counter() - t0 - curve_s
    if run.stop.signum is not None:
        interrupted(run)
    finish_relaunch()  # DDP launcher: close the process group before the next job of a sweep
    run.timings.update({f"time/{k}": v for k, v in run.module.timings().items()})


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


def write_model_card(folder: Path, run: Run, metrics: dict[str, float]) -> None:
    """``README.md`` of the saved model: base model, data, strategy, command and metrics
    (:mod:`hnm.model_card`), in place of sentence-transformers' generic card."""
    from hnm import __version__, model_card

    figures = {**metrics, "train/pairs": float(len(run.pairs)),
               "train/steps": float(run.trainer.global_step)}
    write_text(folder / "README.md", model_card.card(
        resolved(run.cfg), figures, run.context["strategy"],
        task_overrides() or str(run.context.get("overrides") or "").split(),
        run.split, run.data.name, __version__))


def report(run: Run) -> float:
    """Rank 0: final evaluation, the saved model, ``metrics.json``, the table; returns
    ``cfg.optimize_metric`` (NaN on the other DDP ranks)."""
    cfg, trainer, out, metrics = run.cfg, run.trainer, run.out, run.metrics
    if not trainer.is_global_zero:  # another DDP rank: rank 0 evaluates, saves and reports
        return float("nan")
    t0, n0 = time.perf_counter(), counting.thread_texts()
    doc_model = run.module.doc_encoder  # ADORE: the corpus side stays the frozen encoder
    doc_embed = (run.embed if doc_model is None  # ADORE's frozen document encoder: cached
                 else frozen_embed_fn(doc_model, cfg.eval.batch_size))
    final = run.evaluator(run.embed, doc_embed, run.split)  # keys name the split
    run.eval_texts += counting.thread_texts() - n0
    metrics.update(final)
    write_eval_outputs(run.evaluator, out, run.split)
    run.timings["time/final_eval_s"] = time.perf_counter() - t0
    with atomic_path(claim(out / "model", "a saved model")) as tmp:  # complete or absent
        run.encoder.save(str(tmp))
        write_model_card(tmp, run, metrics)
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
    metrics.update(compute_metrics(run))
    effects = effect_metrics(run.parts.reported())
    metrics.update(effects)
    later = {k: v for k, v in metrics.items() if not k.startswith("zero_shot/")}
    dashboards.log_at(run.loggers, later, step=trainer.global_step, skip_tensorboard=True)
    dashboards.tensorboard_hparams(run.loggers, {**resolved(cfg), "strategy":
                                                 run.context["strategy"]},
                                   later, trainer.global_step, run.split)
    write_json(out / "metrics.json", metrics)
    write_json(out / CONTEXT_FILE, {**run.context, "load": run.load.summary()
                                    if run.load is not None else {}})
    if not (out / "config.yaml").exists():
        write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    print_table(before_after_table(metrics, run.data.name, after=run.split, split=run.split))
    warn_no_effect(effects, list(run.parts.reported()))
    announce(next_step(run.context["strategy"], task_overrides(), metrics,
                       run.data.name, run.split, len(run.pairs), trainer.global_step))
    announce(f"run folder: {out}")
    hint = dashboards.wandb_hint(run.loggers, out)
    if hint:
        announce(hint)
    write_status(out, "finished")
    run.finished = True
    key = str(cfg.optimize_metric)
    if "/" not in key:
        key = f"{run.split}/{run.data.name}/{key}"
    if key not in metrics:
        raise ConfigError(f"optimize_metric={key!r} is not among the run's metrics: "
                          f"{', '.join(sorted(k for k in metrics if '/' in k)[:12])}, …")
    return float(metrics[key])


def compute_metrics(run: Run) -> dict[str, float]:
    """What the run used (``compute/…`` in ``metrics.json``): texts encoded with gradient,
    texts run through a model without gradient (counted whether encoded or served from the
    embedding cache) for the strategy and for evaluation, the learning curve's cost, and the
    process's CPU time and the machine's load during the run."""
    if run.load is not None:
        run.load.stop()
    load = run.load.summary() if run.load is not None else {}
    nograd = counting.nograd_texts() - run.nograd_start
    evaluated = run.eval_texts + (run.val_curve.texts if run.val_curve is not None else 0)
    out = {"compute/texts_with_grad": float(counting.grad_texts() - run.grad_start),
           "compute/nograd_texts_strategy": float(max(0, nograd - evaluated)),
           "compute/nograd_texts_eval": float(evaluated),
           "compute/cpu_s": float(load.get("cpu_s", 0.0))}
    for key in ("load_mean", "other_load"):
        if key in load:
            out[f"compute/{key}"] = float(load[key])
    if run.val_curve is not None:
        out.update(run.val_curve.metrics())
    return out


def cleanup(run: Run) -> None:
    """Finalise the loggers (each W&B run closed, so the next job of a sweep gets its own) and
    restore the DDP relaunch state, whatever happened."""
    finish_relaunch()
    if run.load is not None:
        run.load.stop()
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
