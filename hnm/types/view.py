"""What a part may see of training while it runs: a narrow, read-only view, never the module.

The training module hands its view to every part that asks (:class:`~hnm.types.UsesTraining`)
and to the hooks that run after the optimizer step. A part that needs a model of its own
declares it (:class:`~hnm.types.DeclaresModels`) instead of adding it to the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import nn

    from hnm.types.roles import EmbedFn


@runtime_checkable
class TrainingView(Protocol):
    """Read-only training state and what a part may use of the models being trained.

    Attributes:
        epoch: the current epoch.
        step: optimizer steps done (the global step).
        total_steps: the run's optimizer steps (None before a trainer is attached).
        world_size: processes training together (1 without DDP).
        over: training has finished or was interrupted (background work should stop).
        dropout: the trainable encoders train in train mode (``module.dropout``).
        encoder: the query encoder being trained (the one to snapshot).
        doc_encoder: a separate document encoder (ADORE's frozen one), or None when the query
            encoder embeds documents too.
    """

    @property
    def epoch(self) -> int: ...

    @property
    def step(self) -> int: ...

    @property
    def total_steps(self) -> int | None: ...

    @property
    def world_size(self) -> int: ...

    @property
    def over(self) -> bool: ...

    @property
    def dropout(self) -> bool: ...

    @property
    def encoder(self) -> nn.Module: ...

    @property
    def doc_encoder(self) -> nn.Module | None: ...

    def query_embedder(self, batch_size: int) -> EmbedFn:
        """No-grad embeddings of texts by the current query encoder (ADORE's per-step search)."""
        ...

    def embedders(self, batch_size: int, progress: bool = False) -> tuple[EmbedFn, EmbedFn]:
        """No-grad (query, document) embedders of the current weights, as a refresh uses them:
        under DDP each rank embeds a share and receives all; before the first optimizer step
        (and for a frozen document encoder) served through the run's embedding cache."""
        ...

    def frozen_embedder(self, model: nn.Module, batch_size: int) -> EmbedFn:
        """Normalised embeddings by a model whose weights never change (a guide, a teacher),
        through the run's embedding cache (texts it embedded before are not encoded again)."""
        ...

    def through_cache(self, model: nn.Module, inner: EmbedFn, **settings: object) -> EmbedFn:
        """Any pass ``inner`` of a frozen ``model`` through the run's embedding cache;
        ``settings``: what besides the weights shapes its output (part of the cache key)."""
        ...
