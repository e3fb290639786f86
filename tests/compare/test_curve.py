"""The training-curve CSV callback and the wall-time split of the telemetry."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch

from hnm.callbacks.curve import TrainCurve
from hnm.compare.runs import load_run
from hnm.errors import HnmError
from hnm.modules.telemetry import time_split


class Linear(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": opt, "lr_scheduler": {
            "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1)),
            "interval": "step"}}

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(12, 2, generator=g)
        return torch.utils.data.DataLoader(list(zip(x, x.sum(1, keepdim=True))), batch_size=4)


def _fit(path: Path, **kw) -> Linear:
    module = Linear()
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, callbacks=[TrainCurve(path)], **kw).fit(module)
    return module


def test_curve_rows_match_the_steps(tmp_path: Path) -> None:
    path = tmp_path / "train_curve.csv"
    module = _fit(path)
    rows = list(csv.DictReader(path.open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert [float(r["loss"]) for r in rows] == pytest.approx(module.losses, rel=1e-5)
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert all(float(r["elapsed_s"]) >= 0 for r in rows)


def test_curve_with_gradient_accumulation_has_one_row_per_step(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    _fit(path, accumulate_grad_batches=3)
    assert [r["step"] for r in csv.DictReader(path.open())] == ["1"]


def test_curve_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "train_curve.csv"
    path.write_text("mine\n")
    with pytest.raises(HnmError, match="never overwrites"):
        _fit(path)
    assert path.read_text() == "mine\n"


def test_compare_reads_the_curve(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    for name, text in (("metrics.json", "{}"), (".hydra/config.yaml", "seed: 1\n"),
                       (".hydra/overrides.yaml", "[]\n")):
        (tmp_path / name).write_text(text)
    module = _fit(tmp_path / "train_curve.csv")
    curve = load_run(tmp_path).curve()
    assert [r["step"] for r in curve] == [1.0, 2.0, 3.0]
    assert [r["loss"] for r in curve] == pytest.approx(module.losses, rel=1e-5)


def test_time_split() -> None:
    got = time_split({"train_step_s": 6.0, "refresh_s": 1.0, "mine_s": 1.0})
    assert got == {"train_step_s": 6.0, "refresh_s": 1.0, "mine_s": 1.0, "refresh_frac": 0.25}
    assert time_split({})["refresh_frac"] == 0.0
    assert time_split({"train_step_s": 2.0, "refresh_s": 2.0})["refresh_frac"] == 0.5
