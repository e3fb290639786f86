"""``hnm eval``: one model on one or more datasets, scored exactly as ``hnm train`` scores.

The flow: parse ``model=`` and ``eval.datasets`` (:mod:`hnm.eval.targets`); for a run folder
take its dataset, eval settings and seed; load every dataset first (so missing data fails
before any encoding); build the model; then per dataset run the same
:class:`~hnm.eval.RetrievalEvaluator` as training (same ``k``, split, ``max_queries`` and
seed) and write its TREC run and per-query metrics. ``metrics.json`` holds
``{split}/{dataset}/{metric}`` (the keys name the evaluated split: ``test/…``, ``dev/…``) and
``time/{dataset}/eval_s``. Nothing existing is overwritten.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hnm.config_check import instantiate
from hnm.errors import ConfigError, DataError, HnmError, StartRefused
from hnm.eval.targets import (
    ModelSpec,
    load_dataset,
    parse_datasets,
    parse_model,
    saved_max_seq_length,
    with_poison,
    with_run_settings,
)
from hnm.runinfo import claim, run_dir, write_json

log = logging.getLogger(__name__)
for _noisy in ("faiss.loader", "sentence_transformers.base.model", "httpx", "mteb"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


def _overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def _device(cfg: DictConfig) -> str:
    if cfg.get("device"):
        return str(cfg.device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_model(spec: ModelSpec, cfg: DictConfig) -> Any:
    """A SentenceTransformer for dense specs, a BM25Model for ``bm25``."""
    if spec.kind == "bm25":
        from hnm.eval.bm25_model import BM25Model

        knobs: dict[str, Any] = OmegaConf.to_container(cfg.bm25, resolve=True)  # type: ignore
        return BM25Model(**knobs)
    device = _device(cfg)
    if spec.kind == "encoder":
        return instantiate(cfg.encoder, "encoder").to(device)
    from hnm.encoders.factory import hf_encoder

    length = (cfg.eval.get("max_seq_length") or saved_max_seq_length(spec.model_dir)
              or cfg.data.get("max_seq_length") or 256)
    try:
        return hf_encoder(spec.model_dir, max_seq_length=int(length), device=device,
                          inference=str(cfg.encoder.get("inference") or "torch"))
    except ConfigError as err:
        raise ConfigError(f"model={spec.source}: {err}") from err


def _rescore_without_self(evaluator: Any, owner: Any, prefix: str) -> dict[str, float]:
    """MTEB's ``ignore_identical_ids``: drop each query's own id from its results, re-score."""
    from hnm.eval.metrics import evaluate_run

    owner.run = {q: {d: s for d, s in docs.items() if d != q} for q, docs in owner.run.items()}
    mean, owner.per_query = evaluate_run(evaluator.qrels, owner.run)
    return {f"{prefix}/{evaluator.data.name}/{m}": v for m, v in mean.items()}


def _rerank(evaluator: Any, owner: Any, found: dict[str, float], spec: ModelSpec,
            cfg: DictConfig, data: Any, metrics: dict[str, float]) -> dict[str, float]:
    """``eval.rerank_top_k=K``: re-rank each query's dense top K with the run's ``ranker/``
    (or ``eval.ranker``); the dense metrics stay as ``{split}_dense/{dataset}/{metric}``."""
    from hnm.eval.metrics import evaluate_run
    from hnm.eval.rerank import load_ranker, rerank_run

    path = cfg.eval.get("ranker") or (Path(spec.source) / "ranker" if spec.kind == "run"
                                      else None)
    if path is None:
        raise ConfigError("eval.rerank_top_k needs a ranker: evaluate a run folder of "
                          "+miner=ar2 (model=RUN, which has ranker/) or set eval.ranker=PATH")
    ranker = load_ranker(path, _device(cfg))
    stage = evaluator.split
    metrics.update({k.replace(f"{stage}/", f"{stage}_dense/", 1): v for k, v in found.items()})
    owner.run, seconds = rerank_run(owner.run, data, ranker, int(cfg.eval.rerank_top_k),
                                    int(cfg.eval.batch_size))
    mean, owner.per_query = evaluate_run(evaluator.qrels, owner.run)
    metrics[f"time/{data.name}/rerank_s"] = seconds
    return {f"{stage}/{data.name}/{m}": v for m, v in mean.items()}


def write_outputs(owner: Any, out: Path, dataset: str, split: str) -> None:
    """The per-query metrics and TREC run of one dataset, named as ``hnm compare`` expects
    (``{split}_{dataset}_per_query.jsonl``, ``{split}_{dataset}_run.trec``); never
    overwritten."""
    from hnm.compare.files import PER_QUERY, RUN, stage_file
    from hnm.eval.run_io import write_per_query, write_trec_run

    per_query, run = (stage_file(out, split, kind, dataset) for kind in (PER_QUERY, RUN))
    write_per_query(owner.per_query, claim(per_query, per_query.name))
    write_trec_run(owner.run, claim(run, run.name))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run ``hnm eval``; returns the metrics written to ``metrics.json``."""
    from hnm import knobs
    from hnm.report import print_table, runs_table

    out = run_dir()
    try:  # nothing written yet: a refusal leaves the folder as it was
        claim(out / "metrics.json", "metrics.json")
    except HnmError as err:
        raise StartRefused(str(err)) from None
    spec = parse_model(cfg.get("model"))
    if spec.run_config is not None:
        cfg = with_poison(with_run_settings(cfg, spec.run_config, _overrides()),
                          spec.run_config, _overrides())
    knobs.check(cfg)  # the run folder's settings too
    if spec.run_config is not None:
        log.info("run folder %s: dataset %s, its eval settings and seed %s", spec.source,
                 cfg.data.get("name") or cfg.data.get("path"), cfg.seed)
    from hnm.cli import config_dir
    from hnm.precision import choose

    if spec.kind != "bm25":  # encoder.inference=auto resolved for the device, and recorded
        choose(cfg, out, device=_device(cfg))
    targets = parse_datasets(cfg.eval.get("datasets"), cfg.data, config_dir())
    loaded, missing, errors = [], [], []
    for target in targets:  # every dataset before any encoding; all failures in one message
        try:
            loaded.append(load_dataset(target, cfg, cfg.eval.get("split")))
        except DataError as err:
            log.warning("%s: %s", target.spec, err)
            missing.append(target.spec)
            errors.append(f"[{target.spec}] {err}")
    if errors and not cfg.eval.get("skip_missing"):
        raise DataError(f"{len(errors)} of {len(targets)} datasets could not be loaded "
                        "(eval.skip_missing=true evaluates the others): " + " ".join(errors))
    names = [d.name for d, *_ in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"eval.datasets: two datasets share a name ({', '.join(names)}); "
                          "metric keys {split}/{name}/… must differ (rename a BEIR folder)")
    if not loaded:
        raise DataError(f"no dataset could be loaded (skipped: {', '.join(missing)})")

    poisoning = instantiate(cfg.poison, "poison") if cfg.get("poison") else None
    model = build_model(spec, cfg)
    metrics: dict[str, float] = {}
    rows = []
    from hnm.cache import activate, from_config

    with activate(from_config(cfg.get("cache"), cfg.paths.cache_dir)) as cache:
        _evaluate_all(cfg, spec, model, loaded, out, metrics, rows, poisoning)
    metrics.update(cache.metrics())
    write_json(out / "metrics.json", metrics)
    info: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    info["model_kind"], info["skipped_datasets"] = spec.kind, missing
    claim(out / "config.yaml", "config.yaml").write_text(OmegaConf.to_yaml(info))
    from hnm.compare.render import print_wide
    from hnm.report import METRICS, POISON_METRICS

    columns = ["dataset", "split", "queries", *METRICS]
    print_table(runs_table(rows, columns, title=f"hnm eval: {_describe(spec)}"))
    attack = [m for m in POISON_METRICS if any(m in r for r in rows)]
    if attack:  # +poison=…: the attack metrics, in a table of their own
        print_wide(runs_table(rows, ["dataset", *attack], title="poisoning probe"))
    from hnm.logging_setup import announce

    announce(f"eval folder: {out}")
    return metrics


def _evaluate_all(cfg: DictConfig, spec: ModelSpec, model: Any, loaded: list[Any], out: Path,
                  metrics: dict[str, float], rows: list[dict[str, Any]],
                  poisoning: Any = None) -> None:
    """Evaluate ``model`` on every loaded dataset, filling ``metrics`` and ``rows``."""
    for data, split, ignore_self, length in loaded:
        t0 = time.perf_counter()
        if poisoning is not None:  # the attacker passages, as in the run's corpus
            data = poisoning.add_passages(data, poisoning.passages(
                data, str(cfg.data.get("train_split") or "train")))
        evaluator = instantiate(cfg.eval.evaluator, "eval.evaluator", _partial_=True)(data=data, split=split)
        if poisoning is not None:
            from hnm.poison import PoisonEvaluator

            evaluator = PoisonEvaluator(evaluator, poisoning)
        if spec.kind == "bm25":
            scored = evaluator.inner if poisoning is not None else evaluator
            owner, found = model, model.evaluate(scored, split)
            if poisoning is not None:
                found = evaluator.rescore(owner, split)
        else:
            if spec.kind == "encoder" and length and not cfg.eval.get("max_seq_length"):
                model.max_seq_length = int(length)
            from hnm.cache import frozen_embed_fn

            embed = frozen_embed_fn(model, cfg.eval.batch_size)
            owner, found = evaluator, evaluator(embed, embed, split)
        if ignore_self:
            found = _rescore_without_self(evaluator, owner, split)
        k_rerank = int(cfg.eval.get("rerank_top_k") or 0)
        if k_rerank and spec.kind != "bm25":
            found = _rerank(evaluator, owner, found, spec, cfg, data, metrics)
        write_outputs(owner, out, data.name, split)
        metrics.update(found)
        metrics[f"time/{data.name}/eval_s"] = time.perf_counter() - t0
        rows.append({"dataset": data.name, "split": split, "queries": len(evaluator.qids),
                     **{k.rsplit("/", 1)[1]: v for k, v in found.items()}})


def _describe(spec: ModelSpec) -> str:
    if spec.kind in ("encoder", "bm25"):
        return spec.kind
    return f"{spec.kind} {Path(spec.source).name or spec.source}"
