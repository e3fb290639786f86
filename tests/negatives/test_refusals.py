"""Configurations of the negatives strategies that can never act, or are invalid, are refused
before training with the knob named: through ``hnm.train.build`` (a user error, shown without
a traceback) and through the CLI (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hnm.entry import user_message
from tests.effects.harness import compose_cfg, planted_data

REFUSED = [
    # DBPM's history rule needs more epochs than a 1-epoch run has, and its within-epoch rule
    # is off: it could never flag a pair
    (["+negatives=dbpm", "negatives.dbpm.within_epoch_warmup=null"],
     ["negatives.dbpm.warmup_epochs=1", "trainer.max_epochs"]),
    (["+negatives=dbpm", "trainer.max_epochs=2", "negatives.dbpm.warmup_epochs=2",
      "negatives.dbpm.within_epoch_warmup=null"],
     ["negatives.dbpm.warmup_epochs=2", "trainer.max_epochs"]),
    (["+negatives=dbpm", "negatives.dbpm.bad_weight=1.0"], ["negatives.dbpm.bad_weight"]),
    (["+negatives=queue", "trainer.max_steps=1"], ["negatives.queue", "trainer.max_steps"]),
    (["+negatives=queue", "negatives.queue.size=0"], ["negatives.queue.size"]),
    (["+negatives=prebatch", "trainer.max_steps=1"], ["negatives.prebatch",
                                                      "trainer.max_steps"]),
    (["+negatives=prebatch", "negatives.prebatch.k=0"], ["negatives.prebatch.k"]),
    (["+negatives=progressive", "negatives.progressive.strength=0"],
     ["negatives.progressive.strength"]),
    (["+negatives=false_negative_mask", "negatives.false_negative_mask.match_ids=false",
      "negatives.false_negative_mask.match_text=false"], ["match_text=false"]),
    (["+negatives=mochi", "negatives.mochi.n_mix=0", "negatives.mochi.n_query_mix=0"],
     ["negatives.mochi.n_query_mix=0"]),
    (["+negatives=gist", "negatives.gist.margin=-1"], ["negatives.gist.margin"]),
    # no guide: the starting model as its own guide ended below the baseline
    (["+negatives=gist"], ["negatives.gist.guide", "negatives.gist.guide='${encoder}'"]),
]

ACCEPTED = [
    ["+negatives=dbpm"],                       # the default acts within a 1-epoch run
    ["+negatives=dbpm", "trainer.max_epochs=2", "negatives.dbpm.within_epoch_warmup=null"],
    ["+negatives=[queue,prebatch]", "trainer.max_steps=2"],
    ["+negatives=gist", "negatives.gist.guide='${encoder}'"],  # the starting model, chosen
]


def build(tmp_path: Path, overrides: list[str]) -> str | None:
    """None when the run builds, else the user-facing message of its error."""
    from hnm import train as T

    cfg = compose_cfg(overrides)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        T.build(cfg, data=planted_data())
    except Exception as err:  # noqa: BLE001 - a bug (no user message) fails below
        message = user_message(err)
        assert message is not None, f"not a user error: {err!r}"
        return message
    finally:
        os.chdir(old)
    return None


@pytest.mark.parametrize(("overrides", "named"), REFUSED,
                         ids=[" ".join(o) for o, _ in REFUSED])
def test_refused_before_training(tmp_path, overrides, named) -> None:
    message = build(tmp_path, overrides)
    assert message is not None, "the configuration was accepted"
    for knob in named:
        assert knob in message, message


@pytest.mark.parametrize("overrides", ACCEPTED, ids=[" ".join(o) for o in ACCEPTED])
def test_accepted(tmp_path, overrides) -> None:
    assert build(tmp_path, overrides) is None


@pytest.mark.slow
def test_cli_refuses_dbpm_that_could_never_act(tmp_path) -> None:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "hnm.cli", "train", "experiment=smoke", "logger=none",
         "eval.zero_shot=false", "data.leakage_check=false", "+negatives=dbpm",
         "negatives.dbpm.within_epoch_warmup=null", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "negatives.dbpm.warmup_epochs" in out.stderr
    assert "trainer.max_epochs" in out.stderr and "Traceback" not in out.stderr
