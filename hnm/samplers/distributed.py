"""Split each global batch of a batch sampler into per-rank shards (multi-device training)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from hnm.dist import broadcast_object
from hnm.errors import ConfigError
from hnm.types import BatchSampler, EmbedFn


def shard(batch: list[int], world_size: int, rank: int) -> list[int]:
    """Rank ``rank``'s contiguous share of ``batch``: sizes differ by at most one, none empty.

    A batch with fewer items than ranks (only possible as the last, short batch of an epoch)
    is first padded by repeating its items, so that every rank gets one and all ranks run the
    same number of steps.
    """
    if not batch:
        raise ValueError("cannot shard an empty batch")
    items = list(batch)
    while len(items) < world_size:
        items += batch[: world_size - len(items)]
    bounds = np.linspace(0, len(items), world_size + 1).round().astype(int)
    return items[bounds[rank]:bounds[rank + 1]]


class ShardedBatchSampler:
    """Runs a batch sampler at the *global* batch size and hands each rank its shard.

    Under DDP with ``W`` ranks and ``batch_size`` queries per device, the wrapped sampler is
    built with ``batch_size * W`` (by :class:`~hnm.data.datamodule.RetrievalDataModule`), so
    it composes global batches: NGAME lays whole clusters into a global batch, TAS-balanced
    fills a global batch from one topic cluster, and so on. Each global batch is cut into
    ``W`` contiguous shards, rank ``r`` training on shard ``r``; since the module gathers every
    rank's embeddings (:func:`hnm.modules.gather.gather_context`), each query is scored
    against the whole global batch, exactly the batch the sampler composed.

    At the start of each epoch, rank 0's list of global batches is broadcast, so all ranks
    agree on the batches even if a model-dependent sampler's state (clusters computed with
    floating-point search) differed by a tie between machines. ``set_epoch``,
    ``needs_refresh`` and ``refresh`` are forwarded to the wrapped sampler; refresh happens on
    every rank (with sharded embedding, see :func:`hnm.dist.sharded_embed_fn`).

    The number of steps per epoch is ``len(sampler)`` on every rank. When ``batch_size * W``
    does not divide the number of pairs and ``drop_last`` is false, the last global batch is
    shorter and its shards differ by at most one query (the gather handles unequal shards);
    a remainder smaller than ``W`` is padded by repeating pairs.

    Args:
        sampler: a :class:`~hnm.types.BatchSampler` composing global batches.
        world_size: number of ranks ``W``.
        rank: this process's global rank.
        sync: broadcast rank 0's batches each epoch (needs an initialised process group when
            ``world_size > 1``; turn off only for tests).
    """

    def __init__(self, sampler: BatchSampler, world_size: int, rank: int,
                 sync: bool = True) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"invalid rank {rank} for world size {world_size}")
        self.sampler = sampler
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.sync = bool(sync)
        self.batch_size = getattr(sampler, "batch_size", 0) // self.world_size
        self.drop_last = bool(getattr(sampler, "drop_last", False))

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def needs_refresh(self, epoch: int) -> bool:
        return bool(self.sampler.needs_refresh(epoch))

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        return self.sampler.refresh(embed_queries, embed_docs)

    def global_batches(self) -> list[list[int]]:
        """This epoch's global batches (rank 0's when synchronised)."""
        batches = [list(map(int, b)) for b in self.sampler]
        return broadcast_object(batches) if self.sync else batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter([shard(b, self.world_size, self.rank) for b in self.global_batches()])

    def __len__(self) -> int:
        return len(self.sampler)

    def __getattr__(self, name: str):
        # telemetry and tests read the wrapped sampler's state (clusters, epoch, …)
        if name == "sampler":
            raise AttributeError(name)
        return getattr(self.sampler, name)
