"""One real ``Trainer.fit`` step with gradient clipping under every precision hnm can select.

``conf/trainer/gpu.yaml`` (and ``ddp.yaml``, which extends it) trains in ``bf16-mixed`` with
``gradient_clip_val: 1.0``; Lightning's mixed-precision plugin refuses to clip the gradients
of an optimizer that unscales them itself (a fused AdamW), so under ``bf16-mixed`` (no loss
scaler) the module clips them itself and keeps the fused step, and under ``16-mixed`` it steps
a ``foreach`` AdamW. Each case runs on the CPU: a step, a finite loss and changed parameters;
the bf16 cases also check that the fused step saw clipped gradients and float32 scores.
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


def test_adamw_kernel_is_fused_unless_a_loss_scaler_must_be_clipped() -> None:
    params = [torch.nn.Parameter(torch.zeros(2, 2))]
    assert adamw_kernel(params, "32-true", 1.0) == (True, None)
    assert adamw_kernel(params, "bf16-mixed", 0.0) == (True, None)
    assert adamw_kernel(params, "bf16-mixed", 1.0) == (True, None)  # clipped by the module
    assert adamw_kernel(params, "bf16-true", 1.0) == (True, None)
    assert adamw_kernel(params, "16-mixed", 0.5) == (None, True)
    assert adamw_kernel(params, "16-mixed", 0.0) == (True, None)
    assert adamw_kernel([torch.nn.Parameter(torch.zeros(2, dtype=torch.complex64))],
                        "32-true", 1.0) == (None, None)
    assert adamw_kernel([], "32-true", 1.0) == (None, None)


class _Recording(RetrievalModule):
    """Records whether the optimizer step is fused and the gradients it used (read right
    after it: Lightning runs the closure, with backward and clipping, inside ``step``, and
    AdamW leaves ``.grad`` as it found it)."""

    def configure_optimizers(self):
        out = super().configure_optimizers()
        opt = out["optimizer"]
        self.seen: list[dict] = []

        def after_step(optimizer, args, kwargs):
            grads = [p.grad for g in optimizer.param_groups for p in g["params"]
                     if p.grad is not None]
            self.seen.append({
                "fused": bool(optimizer.defaults.get("fused")),
                "norm": torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads])).item(),
                "max": max(g.abs().max().item() for g in grads)})

        opt.register_step_post_hook(after_step)
        return out


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_bf16_mixed_clips_before_the_fused_step(tiny_model, algorithm: str) -> None:
    """bf16-mixed + clipping: the fused AdamW steps, on gradients clipped as Lightning would
    (a limit far below the raw gradients, so clipping must have happened), from float32
    scores and a float32 loss."""
    pairs = TrainPairs.from_split(make_data(), "train")
    module = _Recording(copy.deepcopy(tiny_model), InfoNCELoss(), pairs, lr=1e-3,
                        telemetry_every=0)
    dtypes: list = []
    module.observers.append(lambda ctx, loss, pq: dtypes.append((ctx.scores().dtype,
                                                                loss.dtype)))
    limit = 1e-4
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, precision="bf16-mixed",
                        gradient_clip_val=limit, gradient_clip_algorithm=algorithm,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        use_distributed_sampler=False)
    trainer.fit(module, datamodule=RetrievalDataModule(pairs, batch_size=4, seed=0))
    assert trainer.global_step == 1 and len(module.seen) == 1
    seen = module.seen[0]
    assert seen["fused"]
    if algorithm == "norm":
        assert seen["norm"] == pytest.approx(limit, rel=1e-3)
    else:
        assert seen["max"] <= limit * (1 + 1e-6)
    assert dtypes == [(torch.float32, torch.float32)]


def test_bf16_mixed_clipping_matches_lightnings_on_the_same_gradients(tiny_model) -> None:
    """The module's own clipping is Lightning's (``clip_grad_norm_`` over the optimizer's
    parameters): on the same gradients, 32-true through Lightning and the bf16 path agree."""
    from lightning.pytorch.plugins.precision import MixedPrecision, Precision

    gen = torch.Generator().manual_seed(0)
    results = []
    for plugin in (Precision(), MixedPrecision("bf16-mixed", "cpu")):
        model = copy.deepcopy(tiny_model)
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen.manual_seed(1)) * 10
        module = RetrievalModule(model, InfoNCELoss(), TrainPairs.from_split(make_data(),
                                                                            "train"))
        opt = torch.optim.AdamW(module.parameters(), fused=True)

        class _T:  # the trainer attributes the hook reads
            precision_plugin = plugin

        module._trainer = _T()  # type: ignore[assignment]
        if isinstance(plugin, MixedPrecision):
            module.configure_gradient_clipping(opt, 0.5, "norm")
        else:
            plugin.clip_gradients(opt, 0.5)
        results.append([p.grad.clone() for p in module.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
