"""The comparison a user makes, end to end: two real smoke sweeps on the dev split with
learning curves, ``hnm compare`` over them, and what reached W&B read back from the offline
runs. Nothing may say ``test`` where the numbers are dev numbers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.wandb_records import run_file, summary

COMMON = ["experiment=smoke", "data.eval_split=dev", "eval.every_n_steps=4", "group=e2e",
          "eval.val_queries=50", "eval.val_corpus=500"]


def _hnm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-m", "hnm.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_dev_sweep_compare_and_dashboards(tmp_path: Path) -> None:
    base = _hnm("train", "-m", *COMMON, "seed=1,2", f"hydra.sweep.dir={tmp_path}/base",
                cwd=tmp_path)
    _hnm("train", "-m", *COMMON, "+sampler=ngame", "seed=1,2",
         f"hydra.sweep.dir={tmp_path}/ngame", cwd=tmp_path)
    text = base.stdout
    assert "metrics on the dev split" in text and "hnm compare" in text and "wandb sync" in text
    assert (tmp_path / "base" / "summary.md").is_file()
    run = tmp_path / "ngame" / "0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert "dev/stdlib_code/ndcg@10" in metrics
    assert not any(k.startswith("test/") for k in metrics)
    assert (run / "dev_per_query.jsonl").is_file() and (run / "val_curve.csv").is_file()
    assert json.loads((run / "context.json").read_text())["eval_split"] == "dev"

    done = _hnm("compare", str(tmp_path), "--out", str(tmp_path / "cmp"), "--resamples", "500",
                cwd=tmp_path)
    out = tmp_path / "cmp"
    assert "dev metrics of 4 runs in 2 groups" in done.stdout
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["split"] for r in rows} == {"dev"}
    ngame = next(r for r in rows if r["group"] == "+sampler=ngame" and r["metric"] == "ndcg@10")
    for col in ("delta", "ci_low", "ci_high", "p", "mde_80", "compute:texts w/ grad",
                "compute:no-grad texts (strategy)", "compute:fit s"):
        assert ngame[col] != "", col
    assert ngame["test"] == "t-test over queries and seeds"
    assert float(ngame["compute:no-grad texts (strategy)"]) > 0
    md = (out / "compare.md").read_text()
    assert "Split: **dev**" in md and "test ndcg" not in md
    for name in ("compare.png", "curves.png", "compare.html"):
        assert (out / name).stat().st_size > 10_000, name

    # what reached W&B: a run per job, named by strategy and seed, in the sweep's group, with
    # the flat strategy key and the zero-shot metrics at step 0; the comparison beside them
    rec = summary(run_file(run))
    assert rec["run"]["name"] == "ngame s1" and rec["run"]["group"] == "e2e"
    assert rec["config"]["strategy"] == "sampler=ngame" and "sampler:ngame" in rec["run"]["tags"]
    # each setting once: the module's knobs under module.*, not repeated at the top level
    assert "lr" in rec["config"]["module"] and not {"lr", "weight_decay", "warmup_ratio",
                                                     "dropout"} & set(rec["config"])
    zero = [h for h in rec["history"] if "zero_shot/stdlib_code/ndcg@10" in h]
    assert zero and zero[0]["trainer/global_step"] == 0
    assert any("val/stdlib_code/ndcg@10" in h for h in rec["history"])
    assert summary(run_file(tmp_path / "base" / "1"))["config"]["strategy"] == "baseline"
    cmp = summary(run_file(out))
    assert cmp["run"]["job_type"] == "compare" and cmp["run"]["group"] == "e2e"
    assert any(k.startswith("comparison") for h in cmp["history"] for k in h)
    assert any(f.startswith("media/table/comparison") for f in cmp["files"])
