"""`hnm mine` composes with every miner, and its file trains with +miner=from_file."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hnm.cli import config_dir
from tests.test_cli import run

MINERS = sorted(p.stem for p in (Path(config_dir()) / "miner").glob("*.yaml"))


@pytest.mark.parametrize("miner", MINERS)
def test_mine_config_composes(miner: str) -> None:
    extra = ["miner.path=/x.jsonl"] if miner == "from_file" else []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("mine", overrides=["experiment=smoke", f"miner={miner}", *extra])
    assert cfg.miner._target_.startswith("hnm.miners.")
    assert cfg.data.max_train_pairs == 256 and cfg.output is None


@pytest.mark.slow
def test_mine_then_train_from_file(tmp_path: Path) -> None:
    out = tmp_path / "negs.jsonl"
    args = ["mine", "experiment=smoke", "data.max_train_pairs=64",
            f"hydra.run.dir={tmp_path / 'mine'}"]
    mined = run([*args, f"output={out}"], tmp_path)
    assert mined.returncode == 0, mined.stderr[-3000:]
    assert not (tmp_path / "mine" / "wandb").exists()  # no W&B run unless logger= asks
    # the next command it suggests trains on the same data with the same encoder
    hint = next(ln for ln in mined.stdout.splitlines() if "hnm train" in ln)
    suggested = shlex.split(hint[hint.index("hnm train"):])[2:]
    assert {"experiment=smoke", "data.max_train_pairs=64", "+miner=from_file",
            f"miner.path={out}"} <= set(suggested), hint
    assert not any(a.startswith(("output=", "hydra.", "logger=")) for a in suggested), hint
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 64 and all(len(r["neg_ids"]) == 50 for r in lines)
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["dataset"] == "stdlib_code" and meta["settings"]["num_negatives"] == 5
    assert meta["telemetry"]["queries"] == 64
    again = run([*args, f"output={out}"], tmp_path)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    trained = run(["train", *suggested, "logger=none", "trainer.max_steps=2",
                   f"hydra.run.dir={tmp_path / 'train'}"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((tmp_path / "train" / "metrics.json").read_text())
    assert metrics["mine/queries"] == 64 and metrics["mine/short_queries"] == 0
    assert metrics["train/steps"] == 2


def test_dense_static_takes_a_nested_encoder_config() -> None:
    enc = "miner.encoder={_target_: hnm.encoders.factory.tiny_encoder, seed: 3}"
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "+miner=dense_static", enc])
    assert cfg.miner.encoder._target_.endswith("tiny_encoder") and cfg.miner.encoder.seed == 3
