"""Synthetic finished run folders (metrics.json, .hydra/, per-query metrics, a curve)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml


def write_run(folder: Path, *, seed: int, overrides: list[str], config: dict,
              per_query: dict[str, float] | None, dataset: str = "toy",
              curve: list[float] | None = None, split: str = "test",
              zero_shot: float = 0.1, context: dict | None = None) -> Path:
    """A run whose ``split`` ndcg@10 is the mean of ``per_query`` (other metrics derived);
    ``context`` is written as context.json."""
    (folder / ".hydra").mkdir(parents=True)
    cfg = {"seed": seed, "task_name": "train", "paths": {"cache_dir": str(folder)},
           "data": {"eval_split": split},
           "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger"}, **config}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([*overrides, f"seed={seed}"]))
    metrics = {"train/steps": 3.0}
    if per_query is not None:
        mean = float(np.mean(list(per_query.values())))
        metrics.update({f"{split}/{dataset}/ndcg@10": mean,
                        f"{split}/{dataset}/recall@100": mean / 2,
                        f"zero_shot/{dataset}/ndcg@10": zero_shot})
        with open(folder / f"{split}_per_query.jsonl", "w") as f:
            for q, v in per_query.items():
                f.write(json.dumps({"qid": q, "ndcg@10": v, "recall@100": v / 2}) + "\n")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if context is not None:
        (folder / "context.json").write_text(json.dumps(context))
    if curve is not None:
        rows = ["step,epoch,loss,lr,elapsed_s"]
        rows += [f"{i + 1},0,{v},0.001,{i}" for i, v in enumerate(curve)]
        (folder / "train_curve.csv").write_text("\n".join(rows) + "\n")
    return folder


def plain(temperature: float = 0.05) -> dict:
    return {"loss": {"_target_": "hnm.losses.infonce.InfoNCELoss", "temperature": temperature},
            "batch_size": 16}


def with_sampler(temperature: float = 0.05) -> dict:
    return {**plain(temperature),
            "sampler": {"_target_": "hnm.samplers.ngame.NGAMESampler", "cluster_size": 8}}


def planted_sweep(root: Path, n_queries: int = 60, effect: float = 0.08) -> Path:
    """Three groups x two seeds: ``defaults`` (baseline), ``+sampler=ngame`` better by
    ``effect`` on every query (plus noise), ``loss.temperature=0.1`` identical to baseline."""
    rng = np.random.default_rng(0)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.7, n_queries))}
    num = 0
    for seed in (1, 2):
        write_run(root / str(num), seed=seed, overrides=["experiment=smoke"], config=plain(),
                  per_query=base, curve=[3.0, 2.5, 2.2])
        num += 1
        better = {q: v + effect + float(rng.normal(0, 0.02)) for q, v in base.items()}
        write_run(root / str(num), seed=seed, overrides=["experiment=smoke", "+sampler=ngame"],
                  config=with_sampler(), per_query=better, curve=[3.0, 2.0, 1.5])
        num += 1
        write_run(root / str(num), seed=seed,
                  overrides=["experiment=smoke", "loss.temperature=0.1"], config=plain(0.1),
                  per_query=base, curve=[3.1, 2.6, 2.3])
        num += 1
    return root


def mark(folder: Path, state: str, **extra) -> Path:
    """Give a fake run a ``status.json`` (``state``: running/interrupted/failed/finished)."""
    from hnm.runinfo import write_status

    write_status(folder, state, **extra)
    return folder
