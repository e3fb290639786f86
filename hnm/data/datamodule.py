"""LightningDataModule: training pairs batched by a (possibly model-aware) batch sampler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from hnm.data.dataset import TrainPairs
from hnm.types import BatchSampler


class _PairIndex(Dataset):
    def __init__(self, pairs: TrainPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> int:
        return i


class PairCollator:
    """Turns a list of pair indices into a batch dict of ids and texts."""

    def __init__(self, pairs: TrainPairs) -> None:
        self.pairs = pairs

    def __call__(self, idx: list[int]) -> dict[str, Any]:
        p = self.pairs
        return {
            "idx": torch.tensor(idx, dtype=torch.long),
            "qids": [p.qids[i] for i in idx],
            "pos_ids": [p.pos_ids[i] for i in idx],
            "queries": [p.query(i) for i in idx],
            "positives": [p.positive(i) for i in idx],
        }


@runtime_checkable
class StartsEpochs(Protocol):
    """A training module that runs ``Phase.EPOCH_START`` for the epoch about to start."""

    def start_epoch(self, epoch: int) -> None: ...


class RetrievalDataModule(L.LightningDataModule):
    """Serves training batches composed by ``sampler``.

    Args:
        pairs: training pairs.
        batch_size: queries per batch per device; under DDP the sampler composes global batches
            of ``batch_size * world_size`` that are split by rank
            (:class:`~hnm.samplers.distributed.ShardedBatchSampler`).
        sampler: a factory ``(pairs=, batch_size=, seed=, drop_last=) -> BatchSampler``; the
            random shuffle when None.
        seed: seed of the sampler's randomness (with the epoch).
    """

    def __init__(self, pairs: TrainPairs, batch_size: int,
                 sampler: Callable[..., BatchSampler] | None = None, seed: int = 0,
                 drop_last: bool = False, num_workers: int = 0) -> None:
        super().__init__()
        from hnm.samplers.random import RandomBatchSampler

        factory = sampler or RandomBatchSampler
        self.pairs = pairs
        self.batch_sampler: BatchSampler = factory(pairs=pairs, batch_size=batch_size,
                                                   seed=seed, drop_last=drop_last)
        self.num_workers = num_workers
        self.per_device_batch_size = int(batch_size)
        self._skip: tuple[int, Callable[[], None] | None] = (0, None)

    def skip_first(self, batches: int, after: Callable[[], None] | None = None) -> None:
        """A resumed run: the next epoch iterator starts after its first ``batches`` batches
        (trained on before the checkpoint), then calls ``after`` (which puts the sampler's
        counters back to the checkpoint's)."""
        self._skip = (int(batches), after)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._shard_for_devices()

    def _shard_for_devices(self) -> None:
        """Under DDP, let the sampler compose global batches and hand each rank its shard.

        The sampler object is kept (a miner may hold it, e.g. ``tas_balanced``'s negatives);
        its ``batch_size`` is raised to ``batch_size * world`` before its first use.
        """
        from hnm.errors import ConfigError
        from hnm.samplers.distributed import ShardedBatchSampler

        trainer = self.trainer
        world = int(getattr(trainer, "world_size", 1) or 1)
        if trainer is None or world == 1 or isinstance(self.batch_sampler, ShardedBatchSampler):
            return
        inner = self.batch_sampler
        if not hasattr(inner, "batch_size"):
            raise ConfigError(
                f"sampler {type(inner).__name__} has no batch_size attribute; multi-device "
                "runs need one (hnm sets it to the global batch size, batch_size * devices)")
        inner.batch_size = self.per_device_batch_size * world  # type: ignore[attr-defined]
        self.batch_sampler = ShardedBatchSampler(inner, world, int(trainer.global_rank))

    def train_dataloader(self) -> DataLoader:
        """The epoch's batches. Lightning asks for them (and builds the epoch-0 iterator, or a
        resumed epoch's) before any epoch-start hook, so the training module's
        ``Phase.EPOCH_START`` (the sampler's epoch and refresh) runs here first, with the
        checkpoint, the devices and, under DDP, the process group in place."""
        self._shard_for_devices()
        module = getattr(self.trainer, "lightning_module", None)
        if isinstance(module, StartsEpochs):
            module.start_epoch(self.trainer.current_epoch)  # type: ignore[union-attr]
        sampler: Any = self.batch_sampler
        if self._skip[0]:
            sampler = _SkipFirst(self.batch_sampler, *self._skip)
            self._skip = (0, None)
        return DataLoader(_PairIndex(self.pairs), batch_sampler=sampler,
                          collate_fn=PairCollator(self.pairs), num_workers=self.num_workers)


class _SkipFirst:
    """The sampler's batches, without the first ``n`` of the first epoch iterated (a resumed
    epoch); its length stays the epoch's (Lightning counts the skipped ones as done)."""

    def __init__(self, sampler: Any, n: int, after: Callable[[], None] | None) -> None:
        self.sampler, self.n, self.after = sampler, n, after

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Any:
        it = iter(self.sampler)
        if self.n:
            for _ in range(self.n):
                next(it)
            self.n = 0
            if self.after is not None:
                self.after()
        yield from it
