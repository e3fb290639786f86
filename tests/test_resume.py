"""A killed or interrupted run, resumed, ends exactly as the uninterrupted one: same test metrics
(to 1e-6) and the same training-loss curve from the resume step on, mid-epoch included.

The kill tests run ``hnm train`` as a user does (a subprocess sent SIGKILL, SIGTERM or SIGINT
after its first checkpoint, then ``hnm train resume=<run folder>``); the strategies with more
state (ANCE's refreshes, queue + pre-batch + DBPM) resume in-process from a checkpoint in the
middle of an uninterrupted run, which is what a kill right after that checkpoint leaves."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hnm.cli import config_dir

SHORT = ["experiment=smoke", "logger=none", "eval.zero_shot=false", "data.max_train_pairs=128",
         "trainer.max_steps=-1", "trainer.max_epochs=2", "+trainer.enable_progress_bar=false",
         "eval.evaluator.max_queries=100"]  # 8 batches an epoch, 16 steps, checkpoints every 4
HNM = [sys.executable, "-m", "hnm.cli", "train"]
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def curve(folder: Path) -> list[tuple[int, str]]:
    with open(folder / "train_curve.csv", newline="") as f:
        return [(int(r[0]), r[2]) for r in list(csv.reader(f))[1:]]


def test_metrics(folder: Path) -> dict[str, float]:
    m = json.loads((folder / "metrics.json").read_text())
    return {k: v for k, v in m.items() if k.startswith("test/")}


test_metrics.__test__ = False  # a helper, not a test


def assert_same_run(a: Path, b: Path) -> None:
    ma, mb = test_metrics(a), test_metrics(b)
    assert ma and set(ma) == set(mb)
    assert max(abs(ma[k] - mb[k]) for k in ma) <= 1e-6, (ma, mb)
    assert curve(a) == curve(b)


def _train(folder: Path, extra: list[str], stop_after: int | None = None,
           sig: int = signal.SIGKILL) -> subprocess.CompletedProcess | tuple[int, str]:
    args = [*HNM, *SHORT, f"hydra.run.dir={folder}", *extra]
    if stop_after is None:
        return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    p = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    path = folder / "train_curve.csv"
    try:
        while p.poll() is None:
            if path.exists() and len(path.read_text().splitlines()) - 1 >= stop_after:
                p.send_signal(sig)
                break
            time.sleep(0.02)
        out = p.communicate(timeout=600)[0]
    finally:
        p.kill()
    return p.returncode, out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("resume") / "full"
    out = _train(folder, [])
    assert out.returncode == 0, out.stderr[-3000:]
    return folder


def _resume(folder: Path) -> None:
    out = subprocess.run([*HNM, f"resume={folder}"], env=ENV, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((folder / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path: Path,
                                                                    uninterrupted: Path) -> None:
    folder = tmp_path / "killed"
    rc, _ = _train(folder, [], stop_after=6)  # after the checkpoint at step 4, mid-epoch 0
    assert rc == -signal.SIGKILL
    assert not (folder / "metrics.json").exists()
    assert json.loads((folder / "status.json").read_text())["state"] == "running"
    assert len(curve(folder)) >= 6  # steps 5, 6 trained again after the resume
    _resume(folder)
    assert_same_run(uninterrupted, folder)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_saves_a_checkpoint_and_prints_the_resume_line(tmp_path: Path, uninterrupted: Path,
                                                              sig: int) -> None:
    folder = tmp_path / "stopped"
    rc, out = _train(folder, [], stop_after=10, sig=sig)  # in epoch 1, between two periodic checkpoints
    assert rc == 128 + sig, out[-3000:]
    assert "Traceback" not in out
    line = f"hnm train resume={folder}"
    assert line in out.splitlines()
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "interrupted" and status["resume"] == line
    assert status["step"] % 4 != 0  # the checkpoint was written at the signal
    assert (folder / "checkpoints" / f"step_{status['step']:07d}.ckpt").is_file()
    assert not (folder / "metrics.json").exists()
    _resume(folder)
    assert_same_run(uninterrupted, folder)


# -- in-process: strategies with more state ----------------------------------------------------
def _in_process(folder: Path, overrides: list[str]) -> Path:
    from hnm import train as T

    folder.mkdir(parents=True)
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=[*SHORT, *overrides])
    old = Path.cwd()
    os.chdir(folder)
    try:
        T.train(cfg)
    finally:
        os.chdir(old)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [
    ["+sampler=ngame"],
    ["+miner=ance", "miner.refresh_every_n_steps=3"],
    ["+negatives=[queue,prebatch,dbpm]"],
], ids=["ngame", "ance", "queue+prebatch+dbpm"])
def test_resume_from_a_mid_run_checkpoint_equals_the_uninterrupted_run(tmp_path: Path,
                                                                       strategy) -> None:
    keep = ["checkpoint.keep=10"]
    full = _in_process(tmp_path / "full", [*strategy, *keep])
    # mid-epoch 0, and mid-epoch 1 (after the epoch-start hooks, DBPM's warm-up, refreshes)
    for step in (4, 12):
        ckpt = full / "checkpoints" / f"step_{step:07d}.ckpt"
        resumed = _in_process(tmp_path / f"resumed{step}", [*strategy, *keep, f"resume={ckpt}"])
        ma, mb = test_metrics(full), test_metrics(resumed)
        assert max(abs(ma[k] - mb[k]) for k in ma) <= 1e-6, (step, ma, mb)
        assert curve(resumed) == [r for r in curve(full) if r[0] > step], step
