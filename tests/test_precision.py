"""``encoder.inference=auto`` and ``trainer.precision=auto``: resolved before a run, logged
once and recorded in the run's config, so that ``hnm compare`` sees the precision that ran.

The detection is forced with ``HNM_BF16_HARDWARE`` (``0``: no bf16 hardware, ``1``: bf16
hardware), so both outcomes are tested on any CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hnm import precision
from hnm.cli import config_dir
from tests.test_cli import run


@pytest.fixture(autouse=True)
def fresh_messages(monkeypatch):
    monkeypatch.setattr(precision, "_SAID", set())


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=["experiment=smoke", "logger=none", *overrides])


@pytest.mark.parametrize("forced, inference, trainer", [("1", "bf16", "bf16-mixed"),
                                                         ("0", "torch", "32-true")])
def test_auto_resolves_in_the_config_and_its_file(tmp_path: Path, monkeypatch, forced,
                                                  inference, trainer) -> None:
    monkeypatch.setenv(precision.ENV, forced)
    cfg = _cfg("encoder.inference=auto", "trainer.precision=auto", "+negatives=gist",
               "negatives.gist.guide='${encoder}'")
    hydra_dir = tmp_path / ".hydra"
    hydra_dir.mkdir()
    OmegaConf.save(cfg, hydra_dir / "config.yaml")  # as Hydra writes it: unresolved
    changed = precision.choose(cfg, tmp_path)
    assert changed == {"encoder.inference": inference, "trainer.precision": trainer}
    assert cfg.encoder.inference == inference and cfg.trainer.precision == trainer
    assert cfg.negatives.gist.guide.inference == inference  # `${encoder}` follows
    saved = OmegaConf.load(hydra_dir / "config.yaml")
    assert saved.encoder.inference == inference and saved.trainer.precision == trainer
    raw = (hydra_dir / "config.yaml").read_text()
    assert "seed: ${seed}" in raw and "${encoder}" in raw  # the rest as Hydra wrote it


def test_other_values_are_left_alone(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(precision.ENV, "1")
    cfg = _cfg()
    assert precision.choose(cfg, tmp_path) == {}
    assert cfg.encoder.inference == "torch" and cfg.trainer.precision == "32-true"


def test_bf16_without_hardware_is_kept_with_one_warning(monkeypatch, caplog) -> None:
    monkeypatch.setenv(precision.ENV, "0")
    cfg = _cfg("encoder.inference=bf16", "trainer.precision=bf16-mixed")
    with caplog.at_level(logging.WARNING, logger="hnm.precision"):
        assert precision.choose(cfg) == {}
        precision.choose(cfg)
    keys = sorted(r.getMessage().split("=")[0] for r in caplog.records)
    assert keys == ["encoder.inference", "trainer.precision"]  # each once, naming its key
    assert cfg.encoder.inference == "bf16" and cfg.trainer.precision == "bf16-mixed"


def test_an_unknown_precision_is_lightnings_to_refuse() -> None:
    cfg = _cfg("trainer.precision=64-true")
    assert precision.choose(cfg) == {}


@pytest.mark.slow
def test_train_records_the_choice_and_compare_sees_it(tmp_path: Path, monkeypatch) -> None:
    """Two smoke runs that both ask for ``auto`` on 'different machines': each records what
    ran, and ``hnm compare`` names the precision as a condition in which they differ."""
    args = ["train", "experiment=smoke", "logger=none", "trainer.max_steps=2",
            "encoder.inference=auto", "trainer.precision=auto", "eval.zero_shot=false"]
    for forced, name in (("0", "fp32"), ("1", "bf16")):
        monkeypatch.setenv(precision.ENV, forced)
        out = run([*args, f"hydra.run.dir={tmp_path / 'runs' / name}"], tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        said = out.stdout + out.stderr
        pick = "bf16" if forced == "1" else "torch"
        assert said.count(f"encoder.inference=auto: {pick}") == 1, said[-3000:]
    runs = tmp_path / "runs"
    cfg = {n: OmegaConf.load(runs / n / ".hydra" / "config.yaml") for n in ("fp32", "bf16")}
    assert (cfg["fp32"].encoder.inference, cfg["fp32"].trainer.precision) == ("torch", "32-true")
    assert (cfg["bf16"].encoder.inference, cfg["bf16"].trainer.precision) == ("bf16",
                                                                              "bf16-mixed")
    assert OmegaConf.load(runs / "bf16" / "config.yaml").encoder.inference == "bf16"
    monkeypatch.delenv(precision.ENV)
    out = run(["compare", str(runs), "--resamples", "100", "--out", str(tmp_path / "cmp")],
              tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    shown = out.stdout + out.stderr
    assert "encoder.inference" in shown and "trainer.precision" in shown, shown[-3000:]
