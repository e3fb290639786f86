"""Rank sharding of global batches: coverage, contiguity, cluster structure, data module."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hnm.data.datamodule import RetrievalDataModule
from hnm.samplers.distributed import ShardedBatchSampler, shard
from hnm.samplers.ngame import NGAMESampler
from hnm.samplers.random import RandomBatchSampler
from tests.samplers.test_ngame import make_pairs, planted_embed, random_groups


@pytest.mark.parametrize(("n", "world"), [(8, 2), (7, 2), (3, 4), (1, 3), (10, 3)])
def test_shards_are_contiguous_balanced_and_cover_the_batch(n: int, world: int) -> None:
    batch = list(range(100, 100 + n))
    parts = [shard(batch, world, r) for r in range(world)]
    assert all(parts)  # no rank is left without a query
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    flat = [i for p in parts for i in p]
    if n >= world:
        assert flat == batch  # contiguous, in order, each item once
    else:
        assert set(flat) == set(batch) and len(flat) == world  # padded by repetition


def _all_ranks(make, world: int) -> list[ShardedBatchSampler]:
    return [ShardedBatchSampler(make(), world, r, sync=False) for r in range(world)]


@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_together_see_each_global_batch_once(drop_last: bool) -> None:
    pairs, world, per_device = make_pairs(50), 3, 4
    samplers = _all_ranks(lambda: RandomBatchSampler(pairs, per_device * world, seed=1,
                                                     drop_last=drop_last), world)
    reference = RandomBatchSampler(pairs, per_device * world, seed=1, drop_last=drop_last)
    for s in samplers + [reference]:
        s.set_epoch(2)
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 == len({len(s) for s in samplers})
    assert len(per_rank[0]) == len(reference)  # the same number of steps on every rank
    for step, global_batch in enumerate(reference.batches()):
        joined = [i for r in range(world) for i in per_rank[r][step]]
        if len(global_batch) >= world:
            assert joined == global_batch
        else:  # 50 = 4 * 12 + 2: a 2-pair remainder for 3 ranks is padded by repetition
            assert set(joined) == set(global_batch) and len(joined) == world
        if len(global_batch) == per_device * world:
            assert all(len(per_rank[r][step]) == per_device for r in range(world))


def test_global_batch_keeps_ngame_clusters_and_each_shard_whole_clusters() -> None:
    n, cluster, per_device, world = 96, 4, 8, 2
    pairs = make_pairs(n)
    group = random_groups(n, cluster, seed=3)
    embed = planted_embed(pairs.query_texts(), group)

    def make() -> NGAMESampler:
        s = NGAMESampler(pairs, per_device * world, seed=0, cluster_size=cluster)
        s.set_epoch(0)
        s.refresh(embed, embed)
        return s

    ranks = _all_ranks(make, world)
    per_rank = [list(s) for s in ranks]
    for step in range(len(ranks[0])):
        global_batch = [i for r in range(world) for i in per_rank[r][step]]
        assert len(set(group[global_batch].tolist())) == per_device * world // cluster
        for r in range(world):  # cluster_size divides the per-device batch: whole clusters
            counts = np.bincount(group[per_rank[r][step]])
            assert set(counts[counts > 0].tolist()) == {cluster}
    assert ranks[1].needs_refresh(0) is False and ranks[1].clusters is not None  # forwarded


def test_datamodule_composes_global_batches_under_ddp() -> None:
    pairs = make_pairs(40)
    dm = RetrievalDataModule(pairs, batch_size=4, seed=0)
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    inner = dm.batch_sampler
    sampler = dm.train_dataloader().batch_sampler
    assert isinstance(sampler, ShardedBatchSampler) and dm.batch_sampler is sampler
    assert sampler.sampler is inner  # kept: a miner may hold it (tas_balanced)
    assert inner.batch_size == 8 and sampler.batch_size == 4
    sampler.sync = False
    reference = RandomBatchSampler(pairs, 8, seed=0)
    assert list(sampler) == [b[4:] for b in reference.batches()]
    dm_one = RetrievalDataModule(pairs, batch_size=4, seed=0)
    dm_one.trainer = SimpleNamespace(world_size=1, global_rank=0)
    assert isinstance(dm_one.train_dataloader().batch_sampler, RandomBatchSampler)


def test_tas_balanced_global_batches_come_from_one_cluster() -> None:
    from hnm.samplers.tas_balanced import TASBalancedSampler

    n, per_device, world = 64, 4, 2
    pairs = make_pairs(n)
    group = random_groups(n, n // 2, seed=5)  # two planted topics of 32 queries
    embed = planted_embed(pairs.query_texts(), group)
    ranks = []
    for rank in range(world):  # what each DDP process builds
        dm = RetrievalDataModule(pairs, per_device, lambda **kw: TASBalancedSampler(
            num_negatives=0, **kw), seed=0)
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)
        sampler = dm.train_dataloader().batch_sampler
        sampler.sync = False
        sampler.set_epoch(0)
        sampler.refresh(embed, embed)
        ranks.append(sampler)
    assert ranks[0].n_clusters == 2  # sized for the global batch: 64 / (4 * 8)
    per_rank = [list(s) for s in ranks]
    for step in range(len(ranks[0])):
        global_batch = [i for r in range(world) for i in per_rank[r][step]]
        assert len(global_batch) == per_device * world
        assert len(set(group[global_batch].tolist())) == 1
