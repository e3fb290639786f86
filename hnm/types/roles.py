"""The four roles of the pluggable parts, as structural Protocols: batch sampler, miner,
in-batch negative strategy, loss.

Every strategy is a plain class that satisfies one of these; Hydra's ``_target_`` is the only
registration. Runtime objects (encoders, datasets) are passed in at instantiate time or through
the methods below, never looked up globally.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from hnm.data.dataset import RetrievalData, TrainPairs
    from hnm.types.context import ScoreContext

# Maps a list of texts to an (n, d) float32 array of L2-normalised embeddings, no gradient.
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@runtime_checkable
class BatchSampler(Protocol):
    """Composes batches of training-pair indices.

    ``set_epoch`` is called by the trainer before each epoch; randomness must depend only on
    (seed, epoch). ``refresh`` re-computes any model-dependent state (e.g. clusters) with the
    current encoder; ``needs_refresh`` tells the refresh callback when to call it.
    """

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def needs_refresh(self, epoch: int) -> bool: ...

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]: ...


@runtime_checkable
class Miner(Protocol):
    """Supplies explicit negatives (document ids) for training queries.

    ``mine`` is called once before training with the starting encoder; ``needs_refresh`` /
    ``refresh`` re-mine with the current encoder on the miner's own schedule (ANCE).
    ``negatives`` returns, for each pair of the batch, exactly ``num_negatives`` document ids
    (padded by random corpus documents where a query ran short) and optional teacher scores.
    """

    num_negatives: int

    def mine(self, data: RetrievalData, pairs: TrainPairs, embed_queries: EmbedFn,
             embed_docs: EmbedFn) -> dict[str, float]: ...

    def negatives(self, pair_idx: Sequence[int], epoch: int, step: int
                  ) -> tuple[list[list[str]], np.ndarray | None]: ...

    def needs_refresh(self, step: int) -> bool: ...

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]: ...


@runtime_checkable
class NegativeStrategy(Protocol):
    """Reshapes the candidate set of a batch: masks, extra negatives, per-example weights.

    Called by the module after encoding and (under DDP) gathering, before the loss.
    """

    def __call__(self, ctx: ScoreContext) -> ScoreContext: ...


@runtime_checkable
class Loss(Protocol):
    """Reduces a :class:`ScoreContext` to a scalar loss."""

    def __call__(self, ctx: ScoreContext) -> object: ...
