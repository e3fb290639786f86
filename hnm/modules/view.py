"""The training module's read-only :class:`~hnm.types.TrainingView`, and a fixed one for parts
used without a trainer (unit tests, the guide's examples)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from hnm.cache.embed import EmbeddingCache, frozen, frozen_embed_fn
from hnm.dist import sharded_embed_fn
from hnm.encoders.embed import embed_fn
from hnm.types import EmbedFn


class ModuleView:
    """What a part may see of a :class:`~hnm.modules.retrieval.RetrievalModule` and its
    trainer (see :class:`~hnm.types.TrainingView`): read-only, with the run's embedding cache
    held explicitly (no process-wide lookup inside a step).

    Args:
        module: the training module.
        cache: the run's embedding cache (None: frozen passes are not cached).
    """

    persistent = False  # never part of a checkpoint (hnm.state)

    def __init__(self, module: Any, cache: EmbeddingCache | None = None) -> None:
        self._module = module
        self._cache = cache

    @property
    def _trainer(self) -> Any:
        return getattr(self._module, "_trainer", None)

    @property
    def epoch(self) -> int:
        return int(self._module.current_epoch)

    @property
    def step(self) -> int:
        return int(self._module.global_step)

    @property
    def total_steps(self) -> int | None:
        trainer = self._trainer
        steps = getattr(trainer, "estimated_stepping_batches", None)
        return None if steps is None else int(steps)

    @property
    def world_size(self) -> int:
        return int(getattr(self._trainer, "world_size", 1) or 1)

    @property
    def over(self) -> bool:
        trainer = self._trainer
        state = getattr(trainer, "state", None)
        return bool(state is not None and (getattr(state, "finished", False)
                                           or getattr(trainer, "interrupted", False)))

    @property
    def dropout(self) -> bool:
        return bool(getattr(self._module, "dropout", True))

    @property
    def encoder(self) -> Any:
        return self._module.encoder

    @property
    def doc_encoder(self) -> Any:
        return self._module.doc_encoder

    def query_embedder(self, batch_size: int) -> EmbedFn:
        return embed_fn(self.encoder, batch_size, progress=False)

    def embedders(self, batch_size: int, progress: bool = False) -> tuple[EmbedFn, EmbedFn]:
        """No-grad embedders of the current weights; under DDP each rank embeds a share of the
        texts and every rank receives all embeddings (:func:`hnm.dist.sharded_embed_fn`), so
        the refresh that follows computes the same state on every rank.

        Before the first optimizer step (``step == 0``: NGAME's first clustering, TAS-B's
        first refresh) the weights are the starting ones and the embedders go through the
        run's embedding cache; so does a separate frozen document encoder (ADORE's) at any
        step."""
        encoder, step = self.encoder, self.step
        doc_model = self.doc_encoder or encoder

        def cached(model: nn.Module) -> EmbedFn:
            return frozen_embed_fn(model, batch_size, progress=progress, cache=self._cache)

        q = cached(encoder) if step == 0 else embed_fn(encoder, batch_size, progress=progress)
        d = cached(doc_model) if step == 0 or doc_model is not encoder else \
            embed_fn(doc_model, batch_size, progress=progress)
        return sharded_embed_fn(q), sharded_embed_fn(d)

    def frozen_embedder(self, model: nn.Module, batch_size: int) -> EmbedFn:
        return frozen_embed_fn(model, batch_size, progress=False, cache=self._cache)

    def through_cache(self, model: nn.Module, inner: EmbedFn, **settings: Any) -> EmbedFn:
        return frozen(model, inner, self._cache, **settings)


@dataclass
class StaticView:
    """A :class:`~hnm.types.TrainingView` with fixed values, for parts used without a trainer
    (unit tests, the examples of ``docs/adding-a-strategy.md``); its embedders encode with
    the given encoders' current weights, uncached."""

    encoder: Any = None
    doc_encoder: Any = None
    epoch: int = 0
    step: int = 0
    total_steps: int | None = None
    world_size: int = 1
    over: bool = False
    dropout: bool = True

    persistent = False

    def query_embedder(self, batch_size: int) -> EmbedFn:
        return embed_fn(self.encoder, batch_size, progress=False)

    def embedders(self, batch_size: int, progress: bool = False) -> tuple[EmbedFn, EmbedFn]:
        doc = self.doc_encoder or self.encoder
        return (embed_fn(self.encoder, batch_size, progress=progress),
                embed_fn(doc, batch_size, progress=progress))

    def frozen_embedder(self, model: nn.Module, batch_size: int) -> EmbedFn:
        return frozen_embed_fn(model, batch_size, progress=False, cache=None)

    def through_cache(self, model: nn.Module, inner: EmbedFn, **settings: Any) -> EmbedFn:
        return frozen(model, inner, None, **settings)
