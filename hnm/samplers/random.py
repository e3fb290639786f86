"""The default batch sampler (a seeded shuffle per epoch) and batching helpers shared by others."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError
from hnm.state import PartState
from hnm.types import EmbedFn, Phase


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """A generator that depends only on ``(seed, epoch, stream)``."""
    return np.random.default_rng([int(seed) % (2**32), int(epoch), int(stream)])


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches that :func:`to_batches` makes from ``n`` items."""
    return n // batch_size if drop_last else -(-n // batch_size)


def to_batches(order: np.ndarray, batch_size: int, drop_last: bool) -> list[list[int]]:
    """Cut an ordering of pair indices into consecutive batches of ``batch_size``."""
    n = num_batches(len(order), batch_size, drop_last)
    flat = np.asarray(order[: n * batch_size], dtype=np.int64).tolist()
    return [flat[b * batch_size:(b + 1) * batch_size] for b in range(n)]


def check_batch_size(batch_size: int) -> None:
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size={batch_size!r} is not valid; expected an integer >= 1")


class ModelFreeSampler(PartState):
    """Protocol plumbing shared by samplers whose batches do not depend on the model.

    A subclass sets ``self.epoch`` and defines ``batches()`` (this epoch's batches) and
    ``__len__``; ``set_epoch``, iteration and the no-op refresh come from here.
    """

    phases = (Phase.EPOCH_START, Phase.COMPOSE_BATCH)

    epoch: int = 0

    def batches(self) -> list[list[int]]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def needs_refresh(self, epoch: int) -> bool:
        return False

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        return {}


class RandomBatchSampler(ModelFreeSampler):
    """Uniformly random batches: a fresh shuffle of all training pairs every epoch.

    The default when no ``sampler`` is configured, i.e. plain in-batch negatives as in DPR
    (Karpukhin et al., EMNLP 2020) and sentence-transformers' ``MultipleNegativesRankingLoss``.
    Each epoch visits every pair exactly once (the last, shorter batch is kept unless
    ``drop_last``); the order depends only on ``(seed, epoch)``. Nothing depends on the model,
    so ``needs_refresh`` is always False.

    Args:
        pairs: the training pairs; only their number is used.
        batch_size: pairs per batch.
        seed: base seed; the epoch's shuffle is seeded by ``(seed, epoch)``.
        drop_last: drop the last batch when it is shorter than ``batch_size``.

    Recommended with: any in-batch loss (``loss=infonce``); it is the baseline every other
    sampler is compared against.
    """

    def __init__(self, pairs: TrainPairs, batch_size: int, seed: int = 0,
                 drop_last: bool = False) -> None:
        check_batch_size(batch_size)
        self.n = len(pairs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def batches(self) -> list[list[int]]:
        """This epoch's batches (what ``__iter__`` yields)."""
        order = epoch_rng(self.seed, self.epoch).permutation(self.n)
        return to_batches(order, self.batch_size, self.drop_last)

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last)
