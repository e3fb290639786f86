"""Sweeps and dashboards: Optuna and joblib configs, both loggers, a 2x2 sweep compared,
Optuna trials, telemetry in W&B offline files and TensorBoard events."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from hnm.cli import config_dir
from tests.test_cli import run


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir(), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_optuna_config_maximises_with_seeded_tpe() -> None:
    cfg = _compose(["experiment=smoke", "hparams_search=optuna", "seed=7"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == "maximize" and sweeper.n_trials == 20 and sweeper.n_jobs == 1
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == 7  # ${seed}
    assert set(sweeper.params) >= {"module.lr", "loss.temperature", "batch_size"}
    assert "optuna_report" in cfg.hydra.callbacks and "sweep_summary" in cfg.hydra.callbacks
    assert cfg.data.eval_split == "dev"  # tuning never reads test
    plain = _compose(["experiment=smoke"])
    assert "hparams_search" not in plain and "Optuna" not in str(plain.hydra.sweeper)
    assert plain.data.eval_split == "test"
    pinned = _compose(["experiment=smoke", "hparams_search=optuna", "data.eval_split=test"])
    assert pinned.data.eval_split == "test"


def test_local_parallel_launcher_is_joblib() -> None:
    launcher = _compose(["hydra/launcher=local_parallel"]).hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2


def test_logger_options() -> None:
    both = _compose(["logger=wandb_tensorboard", "logger.wandb.mode=online"]).logger
    assert both.wandb._target_.endswith("WandbLogger") and both.wandb.mode == "online"
    assert both.tensorboard._target_.endswith("TensorBoardLogger")
    assert _compose(["logger.mode=online"]).logger.mode == "online"  # W&B alone, as before
    assert _compose(["logger=tensorboard"]).logger._target_.endswith("TensorBoardLogger")


def test_tensorboard_logger_writes_events(tmp_path: Path) -> None:
    from hnm.logging_setup import build_loggers

    node = _compose(["logger=tensorboard"]).logger
    (logger,) = build_loggers(node, str(tmp_path), None, "ngame s1",
                              {"a": {"b": 1}, "c": None})
    logger.log_metrics({"neg/pos_score": 0.5}, step=1)
    logger.finalize("success")
    # under the run's name, so TensorBoard lists runs by the names W&B shows
    assert list((tmp_path / "tensorboard" / "ngame_s1").glob("events.out.tfevents.*"))


def _sampler_axis() -> list[str]:
    """The 2x2 grid: two samplers when both exist, else NGAME at two temperatures."""
    if (Path(config_dir()) / "sampler" / "tas_balanced.yaml").is_file():
        return ["+sampler=ngame,tas_balanced"]
    return ["+sampler=ngame", "loss.temperature=0.05,0.1"]


FAST = ["experiment=smoke", "trainer.max_steps=3", "eval.evaluator.max_queries=100",
        "eval.zero_shot=false"]


@pytest.mark.slow
def test_two_by_two_sweep_then_compare(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = run(["train", "-m", *FAST, *_sampler_axis(), "seed=1,2", "logger=wandb_tensorboard",
               "module.telemetry_every=1", f"hydra.sweep.dir={sweep}"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    for num in "0123":
        run_dir = sweep / num
        assert (run_dir / "test_per_query.jsonl").is_file()
        assert (run_dir / "test_run.trec").is_file()
        steps = [r["step"] for r in csv.DictReader((run_dir / "train_curve.csv").open())]
        assert steps == ["1", "2", "3"]
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert 0.0 <= metrics["time/refresh_frac"] <= 1.0 and metrics["time/refresh_s"] > 0
        # telemetry series in the W&B offline run file (one row per step) and in TensorBoard
        blob = b"".join(p.read_bytes() for p in run_dir.glob("wandb/offline-run-*/*.wandb"))
        for key in (b"neg/pos_score", b"neg/neg_score_max", b"neg/pos_rank",
                    b"neg/masked_frac", b"time/refresh_frac"):
            assert blob.count(key) >= 3, key
        assert list((run_dir / "tensorboard").glob("*/events.out.tfevents.*"))
    cmp = run(["compare", str(sweep), "--resamples", "1000"], tmp_path)
    assert cmp.returncode == 0, cmp.stderr[-3000:]
    assert "p (queries only)" in cmp.stdout and "Holm p" in cmp.stdout
    assert "4 runs in 2 groups" in cmp.stdout
    (folder,) = sweep.glob("compare-*")
    assert (folder / "compare.png").read_bytes()[:4] == b"\x89PNG"
    rows = [r for r in csv.DictReader((folder / "compare.csv").open())
            if r["metric"] == "ndcg@10"]
    assert [r["n_seeds"] for r in rows] == ["2", "2"]
    # the eval subsample is seeded apart from the run seed: both seeds score the same 100 queries
    assert rows[1]["p"] != "" and int(rows[1]["queries"]) == 100


@pytest.mark.slow
def test_optuna_three_trials_report_the_best(tmp_path: Path) -> None:
    sweep = tmp_path / "opt"
    out = run(["train", "-m", *FAST, "hparams_search=optuna", "hydra.sweeper.n_trials=3",
               f"hydra.sweep.dir={sweep}"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    values = {}
    for num in "012":
        metrics = json.loads((sweep / num / "metrics.json").read_text())
        values[num] = metrics["dev/stdlib_code/ndcg@10"]  # the keys name the dev split
        assert not any(k.startswith("test/") for k in metrics)
        assert yaml.safe_load((sweep / num / "config.yaml").read_text())["data"][
            "eval_split"] == "dev"
        overrides = yaml.safe_load((sweep / num / ".hydra" / "overrides.yaml").read_text())
        assert any(o.startswith("module.lr=") for o in overrides)
        # one W&B group per sweep, each run named by strategy, seed and trial number, its
        # values in the config
        blob = b"".join(p.read_bytes() for p in (sweep / num).glob("wandb/offline-run-*/*.wandb"))
        assert f"{sweep.parent.name}_{sweep.name}".encode() in blob
        assert f"baseline s42 #{num}".encode() in blob and b"module.lr=" in blob
    assert not (sweep / "3").exists()
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(values.values()))
    assert "best_params" in out.stdout and "best run folder" in out.stdout
