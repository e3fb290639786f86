"""One real ``Trainer.fit`` step with gradient clipping under every precision hnm can select.

``conf/trainer/gpu.yaml`` (and ``ddp.yaml``, which extends it) trains in ``bf16-mixed`` with
``gradient_clip_val: 1.0``; Lightning's mixed-precision plugin refuses to clip the gradients
of an optimizer that unscales them itself (a fused AdamW), so the module's optimizer must be
one it accepts. Each case runs on the CPU: a step, a finite loss and changed parameters.
"""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import TrainPairs
from hnm.losses.infonce import InfoNCELoss
from hnm.modules.retrieval import RetrievalModule, adamw_kernel
from tests.conftest import make_data

PRECISIONS = ["32-true", "bf16-mixed", "16-mixed"]


def _fit_one_step(encoder, **trainer_kwargs) -> tuple[L.Trainer, RetrievalModule, list]:
    pairs = TrainPairs.from_split(make_data(), "train")
    module = RetrievalModule(encoder, InfoNCELoss(), pairs, lr=1e-3, telemetry_every=0)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, gradient_clip_val=1.0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False, **trainer_kwargs)
    return trainer, module, before


def _check_step(trainer: L.Trainer, module: RetrievalModule, before: list) -> None:
    trainer.fit(module, datamodule=RetrievalDataModule(module.pairs, batch_size=4, seed=0))
    assert trainer.global_step == 1
    loss = trainer.callback_metrics["train/loss"]
    assert torch.isfinite(loss).item(), f"loss {loss}"
    after = list(module.parameters())
    assert all(torch.isfinite(p).all().item() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after)), "no parameter changed"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_one_clipped_step_under_each_precision(tiny_model, precision: str) -> None:
    trainer, module, before = _fit_one_step(copy.deepcopy(tiny_model), precision=precision)
    if trainer.precision != precision:  # Lightning's choice, not ours: it says so in a warning
        pytest.skip(f"Lightning {L.__version__} does not run precision={precision!r} on CPU: "
                    f"it substitutes {trainer.precision!r} (already a case of this test)")
    _check_step(trainer, module, before)


def test_one_clipped_step_fp16_with_a_grad_scaler(tiny_model) -> None:
    """fp16 autocast with a loss scaler: Lightning unscales before clipping (the CUDA path)."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    try:
        plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    except (RuntimeError, ValueError) as err:  # torch without a CPU GradScaler
        pytest.skip(f"no fp16 loss scaling on CPU here: {err}")
    trainer, module, before = _fit_one_step(copy.deepcopy(tiny_model), plugins=[plugin])
    assert trainer.precision == "16-mixed"
    _check_step(trainer, module, before)


def test_adamw_kernel_is_fused_unless_lightning_must_clip_mixed_precision() -> None:
    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert adamw_kernel(params, "32-true", 1.0) == (True, None)
    assert adamw_kernel(params, "bf16-mixed", 0.0) == (True, None)
    assert adamw_kernel(params, "bf16-mixed", 1.0) == (None, True)
    assert adamw_kernel(params, "16-mixed", 0.5) == (None, True)
    assert adamw_kernel([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))],
                        "32-true", 1.0) == (None, None)
    assert adamw_kernel([], "32-true", 1.0) == (None, None)
