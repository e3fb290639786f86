"""A failed job of a sweep is recorded and the sweep goes on; the summary lists it and the
sweep exits non-zero. Progress lines and Lightning's INFO lines in logs that are not a
terminal, and ``hnm train --help``."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hnm.callbacks.sweep_summary import collect_jobs, shared_overrides, sweep_exit_code
from hnm.entry import one_line
from hnm.errors import ConfigError
from hnm.runinfo import read_status, write_status
from tests.beir_fixture import write_beir
from tests.test_cli import run

# a whole run in seconds: 32 planted documents, 20 training pairs, no zero-shot evaluation
TINY = ["experiment=smoke", "logger=none", "data=beir", "eval.zero_shot=false"]


def _job(root: Path, num: int, overrides: list[str], state: str | None, **extra) -> Path:
    import yaml

    folder = root / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if state == "finished" or (state is None and extra.pop("metrics", True)):
        (folder / "metrics.json").write_text(json.dumps({"test/toy/ndcg@10": 0.5}))
    if state is not None:
        write_status(folder, state, **extra)
    return folder


def test_summary_rows_and_exit_code(tmp_path: Path) -> None:
    _job(tmp_path, 0, ["seed=1", "batch_size=8"], "finished")
    _job(tmp_path, 1, ["seed=1", "batch_size=0"], "failed", error="batch_size=0 …",
         user_error=True)
    _job(tmp_path, 2, ["seed=1", "batch_size=16"], None)  # before status files: finished
    rows = collect_jobs(tmp_path)
    assert [r["status"] for r in rows] == ["finished", "failed", "finished"]
    assert rows[1]["error"] == "batch_size=0 …" and rows[0]["test/toy/ndcg@10"] == 0.5
    assert shared_overrides(rows) == ["seed=1"]
    assert sweep_exit_code(rows) == 2  # every failure was the user's
    _job(tmp_path, 3, ["seed=1"], "failed", error="RuntimeError: boom", user_error=False)
    _job(tmp_path, 10, ["seed=1"], None, metrics=False)  # died without a trace
    rows = collect_jobs(tmp_path)
    assert [r["run"] for r in rows] == ["0", "1", "2", "3", "10"]
    assert rows[4]["status"] == "unknown" and "did not finish" in rows[4]["error"]
    assert sweep_exit_code(rows) == 1
    assert sweep_exit_code([r for r in rows if r["status"] == "finished"]) == 0
    # `hnm mine` jobs write no metrics.json: a bare job folder is not a failure there
    assert [r["run"] for r in collect_jobs(tmp_path, bare_is_unfinished=False)] == [
        "0", "1", "2", "3"]


def test_one_line_reason() -> None:
    assert one_line(ConfigError("x"), "a\n  paragraph\nof text") == "a paragraph of text"
    assert one_line(KeyError("k"), None) == "KeyError: 'k'"


def test_failed_job_stops_its_launched_ranks_not_the_sweep(tmp_path: Path) -> None:
    """A job's other DDP ranks wait for rank 0 in a collective: after rank 0 failed they are
    killed, and Lightning's watcher of those ranks (which kills every process, the launching
    one included, when a rank exits non-zero) must not kill the sweep."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    from hnm import dist

    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    sweep = subprocess.Popen(sleep)  # stands for the launching process
    rank = subprocess.Popen(sleep)

    class Launcher:
        procs = [rank]

    try:
        _ChildProcessObserver(main_pid=sweep.pid, child_processes=Launcher.procs,
                              sleep_period=0.05).start()
        dist._LAUNCHED[:] = [Launcher]
        dist.stop_launched_ranks()
        assert rank.returncode is not None and rank.returncode != 0
        time.sleep(0.5)  # several rounds of the watcher
        assert sweep.poll() is None, "the watcher killed the launching process"
        assert not dist._LAUNCHED
        dist.stop_launched_ranks()  # nothing launched: a no-op
    finally:
        for proc in (sweep, rank):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_progress_lines_every_n_steps() -> None:
    from hnm.callbacks.progress import ProgressLines, format_line, progress_lines

    line = format_line(40, 400, 32.0, 1.25, "loss=2.3071")
    assert line == "train step 40/400 (10%) [00:32<04:48,  1.25it/s, loss=2.3071]"

    class Trainer:
        global_step = 0
        is_global_zero = True
        estimated_stepping_batches = 5

    lines, trainer = ProgressLines(every_n_steps=2, every_seconds=0), Trainer()
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("hnm.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        lines.on_train_start(trainer, None)
        for step, loss in enumerate([4.0, 2.0, 3.0, 1.0, 0.5], start=1):
            trainer.global_step = step
            lines.on_train_batch_end(trainer, None, {"loss": loss}, None, step - 1)
    finally:
        logger.removeHandler(handler)
    assert [r.split(" [")[0] for r in records] == [
        "train step 2/5 (40%)", "train step 4/5 (80%)", "train step 5/5 (100%)"]
    assert [r.rsplit("loss=", 1)[1][:-1] for r in records] == ["3.0000", "2.0000", "0.5000"]
    from omegaconf import OmegaConf

    node = OmegaConf.create({"enabled": "auto", "every_n_steps": 3, "every_seconds": 0})
    trainer_cfg = OmegaConf.create({})
    assert progress_lines(node, trainer_cfg) is not None  # pytest's stdout: not a terminal
    assert progress_lines(node, OmegaConf.create({"enable_progress_bar": True})) is None
    assert progress_lines(OmegaConf.create({"enabled": False}), trainer_cfg) is None
    with pytest.raises(ConfigError, match="progress.every_n_steps"):
        progress_lines(OmegaConf.create({"enabled": True, "every_n_steps": -1}), trainer_cfg)


def test_train_help_names_the_command(tmp_path: Path) -> None:
    out = run(["train", "--help"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: hnm train ")
    assert "entry" not in out.stdout and "hnm train --hydra-help" in out.stdout


@pytest.mark.slow
def test_sweep_goes_on_after_a_failed_job(tmp_path: Path) -> None:
    data = write_beir(tmp_path / "beir")
    sweep = tmp_path / "sweep"
    out = run(["train", "-m", *TINY, f"data.path={data}", "batch_size=8,0,16",
               f"hydra.sweep.dir={sweep}"], tmp_path, timeout=900)
    assert out.returncode == 2, out.stderr[-3000:]  # the one failure is a bad knob
    assert "Traceback" not in out.stderr
    for num in ("0", "2"):
        assert (sweep / num / "metrics.json").is_file() and (sweep / num / "model").is_dir()
    assert not (sweep / "1" / "metrics.json").exists()
    status = read_status(sweep / "1")
    assert status is not None and status["state"] == "failed" and status["user_error"]
    assert status["error"] == "batch_size=0 is not valid; expected an integer >= 1"
    assert "hnm: error: job #1" in out.stderr
    summary = out.stdout[out.stdout.index(f"sweep {sweep}"):]
    assert "3 jobs, 2 finished" in summary and "1 job(s) did not finish:" in summary
    assert f"sweep {sweep}: 1 of 3 jobs did not finish" in summary
    assert "  1 (batch_size=0): failed: batch_size=0 is not valid; expected an integer >= 1\n" \
        in summary  # the overrides that differ between jobs
    # stdout is a pipe: progress lines instead of Lightning's bar; its start-up INFO lines are
    # left out unless asked for (HNM_VERBOSE=1, see test_single_run_piped_…)
    assert out.stdout.count("train step 2/3 (67%)") == 1  # job 0: 20 pairs, batch 8
    assert out.stdout.count("train step 1/2 (50%)") == 0  # smoke: a line every 2 steps
    assert "train step 2/2 (100%)" in out.stdout  # job 2: 20 pairs, batch 16
    both = out.stdout + out.stderr
    assert both.count("GPU available:") == 0 and both.count("`Trainer.fit` stopped") == 0
    assert both.count("dataset beir") == 2  # hnm's own line, once per job that trained (not #1)
    assert "Epoch 0/0" not in both  # no Lightning progress bar


@pytest.mark.slow
def test_single_run_piped_shows_progress_and_info_once(tmp_path: Path, monkeypatch) -> None:
    data = write_beir(tmp_path / "beir")
    args = ["train", *TINY, f"data.path={data}", "batch_size=4", "trainer.max_steps=5"]
    out = run([*args, f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    progress = [ln for ln in out.stdout.splitlines() if "train step " in ln]
    assert [ln.split("train step ")[1].split(" [")[0] for ln in progress] == [
        "2/5 (40%)", "4/5 (80%)", "5/5 (100%)"]
    assert all("it/s" in ln or "s/it" in ln for ln in progress)
    assert all("loss=" in ln and "<" in ln for ln in progress)  # elapsed<time left
    both = out.stdout + out.stderr
    for line in ("GPU available:", "TPU available:", "`Trainer.fit` stopped"):
        assert both.count(line) == 0, line  # Lightning's start-up chatter: off by default
    assert both.count("run folder:") == 1
    # asked for, Lightning's lines appear, each once, in hnm's format
    monkeypatch.setenv("HNM_VERBOSE", "1")
    loud = run([*args, f"hydra.run.dir={tmp_path / 'verbose'}"], tmp_path)
    assert loud.returncode == 0, loud.stderr[-3000:]
    both = loud.stdout + loud.stderr
    for line in ("GPU available:", "TPU available:", "`Trainer.fit` stopped"):
        assert both.count(line) == 1, line
    assert "INFO: GPU available" not in both  # Lightning's own console format


@pytest.mark.slow
def test_single_run_user_error_exits_2_and_marks_the_folder(tmp_path: Path) -> None:
    """A user error found once the run started marks its folder failed; a bad knob, found
    before Hydra makes the folder, leaves none."""
    data = write_beir(tmp_path / "beir")
    folder = tmp_path / "r"
    out = run(["train", *TINY, f"data.path={data}", "batch_size=0", f"hydra.run.dir={folder}"],
              tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "hnm: error: batch_size=0 is not valid" in out.stderr
    assert not folder.exists()
    out = run(["train", *TINY, f"data.path={data}", "data.eval_split=nosuch",
               f"hydra.run.dir={folder}"], tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "'nosuch'" in out.stderr
    status = read_status(folder)
    assert status is not None and status["state"] == "failed" and status["user_error"]


def _as_sweep_job(tmp_path: Path, overrides: list[str]):
    """The Hydra config of job #1 of a sweep writing to ``tmp_path``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from hnm.cli import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.job.num = 1
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize("search", [[], ["hparams_search=optuna"]])
def test_failed_job_returns_to_basic_sweeper_and_raises_to_optuna(tmp_path: Path,
                                                                  search: list[str]) -> None:
    from hydra.core.hydra_config import HydraConfig

    from hnm.entry import JobFailed, _friendly

    @_friendly(run_status=True)
    def job(cfg):
        raise ConfigError("batch_size=0 is not valid;\n expected an integer >= 1")

    @_friendly(run_status=True)
    def buggy(cfg):
        raise ZeroDivisionError("division by zero")

    cfg = _as_sweep_job(tmp_path, ["experiment=smoke", *search])
    try:
        if search:  # Optuna: the trial fails (a plain, picklable error with the reason)
            with pytest.raises(JobFailed, match=r"^batch_size=0 is not valid; expected"):
                job(cfg)
        else:  # the basic sweeper: the job returns, the sweep goes on
            assert job(cfg) is None
        assert read_status(tmp_path)["user_error"] is True
        write_status(tmp_path, "running", step=3)
        if search:
            with pytest.raises(JobFailed):
                buggy(cfg)
        else:
            assert buggy(cfg) is None
        status = read_status(tmp_path)
        assert status == {**status, "state": "failed", "step": 3, "user_error": False,
                          "error": "ZeroDivisionError: division by zero"}
    finally:
        HydraConfig.instance().cfg = None
