"""``hnm eval``: one model on one or more datasets, scored exactly as ``hnm train`` scores.

The flow: parse ``model=`` and ``eval.datasets`` (:mod:`hnm.eval.targets`); for a run folder
take its dataset, eval settings and seed; load every dataset first (so missing data fails
before any encoding); build the model; then per dataset run the same
:class:`~hnm.eval.RetrievalEvaluator` as training (same ``k``, split, ``max_queries`` and
seed) and write its TREC run and per-query metrics. ``metrics.json`` holds
``test/{dataset}/{metric}`` and ``time/{dataset}/eval_s``. Nothing existing is overwritten.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from hnm.errors import ConfigError, DataError
from hnm.eval.targets import (
    ModelSpec,
    load_dataset,
    parse_datasets,
    parse_model,
    saved_max_seq_length,
    with_run_settings,
)
from hnm.runinfo import claim, run_dir, write_json

log = logging.getLogger(__name__)
for _noisy in ("faiss.loader", "sentence_transformers.base.model", "httpx", "mteb"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
STAGE = "test"


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
        return instantiate(cfg.encoder).to(device)
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


def write_outputs(owner: Any, out: Path, dataset: str) -> None:
    """The per-query metrics and TREC run of one dataset, named as ``hnm compare`` expects
    (``test_{dataset}_per_query.jsonl``, ``test_{dataset}_run.trec``); never overwritten."""
    from hnm.compare.files import PER_QUERY, RUN, stage_file
    from hnm.eval.run_io import write_per_query, write_trec_run

    per_query, run = (stage_file(out, STAGE, kind, dataset) for kind in (PER_QUERY, RUN))
    write_per_query(owner.per_query, claim(per_query, per_query.name))
    write_trec_run(owner.run, claim(run, run.name))


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Run ``hnm eval``; returns the metrics written to ``metrics.json``."""
    from hnm.report import print_table, runs_table

    out = run_dir()
    claim(out / "metrics.json", "metrics.json")
    spec = parse_model(cfg.get("model"))
    if spec.run_config is not None:
        cfg = with_run_settings(cfg, spec.run_config, _overrides())
        log.info("run folder %s: dataset %s, its eval settings and seed %s", spec.source,
                 cfg.data.get("name") or cfg.data.get("path"), cfg.seed)
    from hnm.cli import config_dir

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
                          "metric keys test/{name}/… must differ (rename a BEIR folder)")
    if not loaded:
        raise DataError(f"no dataset could be loaded (skipped: {', '.join(missing)})")

    model = build_model(spec, cfg)
    metrics: dict[str, float] = {}
    rows = []
    for data, split, ignore_self, length in loaded:
        t0 = time.perf_counter()
        evaluator = instantiate(cfg.eval.evaluator, _partial_=True)(data=data, split=split)
        if spec.kind == "bm25":
            owner, found = model, model.evaluate(evaluator, STAGE)
        else:
            if spec.kind == "encoder" and length and not cfg.eval.get("max_seq_length"):
                model.max_seq_length = int(length)
            from hnm.encoders.embed import embed_fn

            embed = embed_fn(model, cfg.eval.batch_size)
            owner, found = evaluator, evaluator(embed, embed, STAGE)
        if ignore_self:
            found = _rescore_without_self(evaluator, owner, STAGE)
        write_outputs(owner, out, data.name)
        metrics.update(found)
        metrics[f"time/{data.name}/eval_s"] = time.perf_counter() - t0
        rows.append({"dataset": data.name, "split": split, "queries": len(evaluator.qids),
                     **{k.rsplit("/", 1)[1]: v for k, v in found.items()}})
    write_json(out / "metrics.json", metrics)
    info: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    info["model_kind"], info["skipped_datasets"] = spec.kind, missing
    claim(out / "config.yaml", "config.yaml").write_text(OmegaConf.to_yaml(info))
    columns = ["dataset", "split", "queries", "ndcg@10", "recall@100", "mrr@10", "map@100"]
    print_table(runs_table(rows, columns, title=f"hnm eval: {_describe(spec)}"))
    print(f"eval folder: {out}")
    return metrics


def _describe(spec: ModelSpec) -> str:
    if spec.kind in ("encoder", "bm25"):
        return spec.kind
    return f"{spec.kind} {Path(spec.source).name or spec.source}"
