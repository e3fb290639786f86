"""Every ``trainer`` option, composed with ``experiment=smoke``, trains a step as configured.

The option's own precision and ``gradient_clip_val`` are kept (``gpu`` and ``ddp``:
``bf16-mixed`` with clipping); only the device is forced to one CPU (and ``ddp``'s strategy to
``auto``, as there is one process), so the precision/optimizer pair that the module picks for
that option goes through Lightning's real optimizer step.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hnm.cli import config_dir
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import TrainPairs
from hnm.modules.retrieval import RetrievalModule
from tests.conftest import make_data

CONF = Path(config_dir())
TRAINERS = sorted(p.stem for p in (CONF / "trainer").glob("*.yaml"))
ON_ONE_CPU = ["trainer.accelerator=cpu", "trainer.devices=1", "trainer.max_steps=1"]


def test_every_trainer_option_is_covered() -> None:
    assert {"cpu", "gpu", "ddp"} <= set(TRAINERS)


@pytest.mark.parametrize("option", TRAINERS)
def test_trainer_option_trains_one_step(option: str) -> None:
    overrides = [f"trainer={option}", "experiment=smoke", "logger=none", *ON_ONE_CPU]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    if "strategy" in cfg.trainer:
        cfg.trainer.strategy = "auto"  # one process: nothing for DDP to do
    trainer: L.Trainer = instantiate(cfg.trainer, _partial_=True)(
        logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.precision == cfg.trainer.precision
    assert trainer.gradient_clip_val == cfg.trainer.gradient_clip_val

    pairs = TrainPairs.from_split(make_data(), "train")
    module = RetrievalModule(instantiate(cfg.encoder), instantiate(cfg.loss), pairs,
                             **cfg.module)
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=RetrievalDataModule(pairs, batch_size=4, seed=0))
    assert trainer.global_step == 1
    assert torch.isfinite(trainer.callback_metrics["train/loss"]).item()
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
