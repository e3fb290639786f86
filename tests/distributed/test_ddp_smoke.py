"""`hnm train … trainer=ddp trainer.accelerator=cpu trainer.devices=2` end to end, in a sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_process_cpu_sweep_with_ngame_writes_one_set_of_outputs_per_job(
        tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    hnm = Path(sys.executable).with_name("hnm")
    cmd = [str(hnm), "train", "-m", "experiment=smoke", "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", "trainer.precision=32-true", "logger=none", "+sampler=ngame",
           "trainer.max_steps=3", "eval.evaluator.max_queries=30", "seed=1,2",
           f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):  # the second job launches its own rank 1 again
        run = sweep / job
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["train/steps"] == 3.0
        assert "test/stdlib_code/ndcg@10" in metrics and "zero_shot/stdlib_code/ndcg@10" in metrics
        assert (run / "model" / "modules.json").is_file()
        assert (run / "train_ddp_process_1.log").is_file()  # rank 1 ran in the job's folder
    assert not list(tmp_path.glob("outputs"))  # … and nowhere else
    assert proc.stdout.count("run folder:") == 2  # only rank 0 reports
