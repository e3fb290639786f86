"""End-to-end: ``hnm`` as a user runs it (subprocess), on the tiny encoder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.beir_fixture import write_beir

HNM = [sys.executable, "-m", "hnm.cli"]


def run(args: list[str], tmp: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HNM_CACHE_DIR": os.environ.get("HNM_CACHE_DIR",
                                                         str(Path.home() / ".cache" / "hnm")),
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*HNM, *args], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_subcommands(tmp_path: Path) -> None:
    out = run(["--help"], tmp_path)
    assert out.returncode == 0
    for sub in ("train", "eval", "mine", "compare"):
        assert sub in out.stdout


def test_train_help_lists_groups(tmp_path: Path) -> None:
    out = run(["train", "--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    for group in ("data:", "encoder:", "sampler:", "loss:", "trainer:", "logger:"):
        assert group in out.stdout
    assert "ngame" in out.stdout and "stdlib_code" in out.stdout


def test_help_into_a_closed_pipe_has_no_traceback(tmp_path: Path) -> None:
    """``hnm train --help | head -1``: the reader is gone before hnm writes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.Popen([*HNM, "train", "--help"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()  # before the interpreter has even imported hnm
    err = p.stderr.read()
    p.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode == 141


def test_cfg_job_prints_config(tmp_path: Path) -> None:
    out = run(["train", "+sampler=ngame", "--cfg", "job"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "NGAMESampler" in out.stdout


def test_unknown_option_lists_valid_ones(tmp_path: Path) -> None:
    out = run(["train", "+sampler=ngmae"], tmp_path)
    assert out.returncode != 0
    assert "ngmae" in out.stderr and "ngame" in out.stderr


def test_missing_beir_path_is_one_paragraph(tmp_path: Path) -> None:
    out = run(["train", "experiment=smoke", "logger=none", "data=beir",
               f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert out.returncode == 2
    assert "data.path" in out.stderr and "Traceback" not in out.stderr


def test_malformed_beir_names_file_and_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "bad")
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[2] = '{"_id": "oops", "text": '
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    out = run(["train", "experiment=smoke", "logger=none", "data=beir", f"data.path={folder}",
               f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert out.returncode == 2
    assert "corpus.jsonl" in out.stderr and "line 3" in out.stderr
    assert "Traceback" not in out.stderr


def _check_run(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder / "model"), device="cpu")
    assert model.encode(["a query"]).shape[1] == 32
    return metrics


NOISE = ("litlogger", "_pytree", "Batches:", "\r", "Writing model shards", "Loading weights",
         "anonymous setting", "Running in WANDB", "GPU available", "TPU available")


def assert_quiet(text: str, once: bool = True) -> None:
    """No third-party chatter, no bar redrawn with carriage returns, and (``once``) no line
    printed twice, progress lines aside."""
    import re

    found = [n for n in NOISE if n in text]
    assert not found, f"noise in the output: {found}\n{text[-3000:]}"
    if once:
        lines = [re.sub(r"^\[[\d\- :,]+\]", "", ln).strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln and "train step" not in ln
                 and not set(ln) <= set("─━│┃┏┓┗┛┡┩└┘┌┐├┤┼╇╈┳┻┯┷ ")]
        twice = sorted({ln for ln in lines if lines.count(ln) > 1})
        assert not twice, f"printed twice: {twice}"


@pytest.mark.slow
def test_smoke_train_ngame_and_no_overwrite(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = run(["train", "experiment=smoke", "+sampler=ngame", "logger=csv",
               f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _check_run(run_dir)
    for stage in ("zero_shot", "test"):
        for m in ("ndcg@10", "recall@100", "mrr@10", "map@100"):
            assert 0.0 <= metrics[f"{stage}/stdlib_code/{m}"] <= 1.0
    assert metrics["train/steps"] == 8
    assert "delta" in out.stdout and "stdlib_code (test split)" in out.stdout
    assert_quiet(out.stdout + out.stderr)
    log = (run_dir / "train.log").read_text()  # the run's log: named by the command
    assert not (run_dir / "entry.log").exists()
    assert "zero_shot vs test" in log  # the final table, at the end of the log
    tail = log[log.index("zero_shot vs test"):]
    assert "ndcg@10" in tail and "recall@100" in tail and "run folder" in tail
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    # the model card travels with the model: what trained it, on what, and how well
    card = (run_dir / "model" / "README.md").read_text()
    for needle in ("stdlib_code", "sampler=ngame", "cluster_size", "hnm train experiment=smoke",
                   f"{metrics['test/stdlib_code/ndcg@10']:.4f}",
                   f"{metrics['zero_shot/stdlib_code/ndcg@10']:.4f}"):
        assert needle in card, needle
    from sentence_transformers import SentenceTransformer

    assert SentenceTransformer(str(run_dir / "model")).encode(["a query"]).shape[0] == 1
    before = (run_dir / "metrics.json").read_text()
    again = run(["train", "experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}"], tmp_path)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    assert (run_dir / "metrics.json").read_text() == before


@pytest.mark.slow
def test_smoke_train_on_beir_folder(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "toy")
    run_dir = tmp_path / "run"
    out = run(["train", "experiment=smoke", "logger=none", "data=beir", f"data.path={folder}",
               f"hydra.run.dir={run_dir}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = _check_run(run_dir)
    assert "test/toy/ndcg@10" in metrics


@pytest.mark.slow
def test_smoke_multirun_is_one_group(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = run(["train", "-m", "experiment=smoke", "+sampler=ngame", "seed=1,2",
               f"hydra.sweep.dir={sweep}", "trainer.max_steps=3"], tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for num in ("0", "1"):
        _check_run(sweep / num)
    assert "seed=1" in out.stdout and "seed=2" in out.stdout  # the summary table
    assert_quiet(out.stdout + out.stderr, once=False)  # W&B's own lines included
    runs = list(sweep.glob("*/wandb/offline-run-*"))
    assert len(runs) == 2
    # both offline run files carry the sweep's group name
    group = f"{sweep.parent.name}_{sweep.name}".encode()
    for r in runs:
        blob = b"".join(p.read_bytes() for p in r.glob("*.wandb"))
        assert group in blob


def test_cache_help_is_plain_text(capsys) -> None:
    from hnm.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["cache", "--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and "hnm cache info" in out and "``" not in out
