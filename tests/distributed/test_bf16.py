"""Scores and the InfoNCE loss stay float32-exact under bf16 autocast (the GPU default)."""

from __future__ import annotations

import torch

from hnm.losses.infonce import InfoNCELoss
from hnm.types import ScoreContext


def _ctx(q: torch.Tensor, d: torch.Tensor, mask: torch.Tensor) -> ScoreContext:
    b = q.shape[0]
    return ScoreContext(q=q, d=d, doc_ids=[""] * d.shape[0], doc_texts=[""] * d.shape[0],
                        qids=[str(i) for i in range(b)], pos_ids=[""] * b, queries=[""] * b,
                        pair_idx=torch.arange(b), labels=torch.arange(b), mask=mask,
                        weights=torch.ones(b))


def test_loss_under_bf16_autocast_equals_float32() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(16, 64, generator=g), dim=-1)
    # near-duplicate hard negatives: scores differ in the 3rd decimal, below bf16's resolution
    d = torch.nn.functional.normalize(q.repeat(3, 1) + 0.01 * torch.randn(48, 64, generator=g),
                                      dim=-1)
    mask = torch.zeros(16, 48, dtype=torch.bool)
    mask[:, 16:20] = True
    loss = InfoNCELoss(temperature=0.05)
    exact = loss(_ctx(q, d, mask))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ctx = _ctx(q, d, mask)
        assert ctx.scores().dtype == torch.float32
        mixed = loss(ctx)
    assert torch.isfinite(mixed)
    torch.testing.assert_close(mixed.float(), exact, rtol=1e-6, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what a bf16 matmul would give
        rough = (q @ d.T).float()
    assert (rough - q @ d.T).abs().max() > 1e-3
