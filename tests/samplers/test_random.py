"""RandomBatchSampler: seeded per (seed, epoch), every pair once per epoch, constant length."""

from __future__ import annotations

import pytest
import torch

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError
from hnm.samplers.random import RandomBatchSampler, to_batches
from hnm.types import BatchSampler


def make_pairs(n: int) -> TrainPairs:
    data = RetrievalData(
        name="toy",
        corpus={f"d{i}": {"title": "", "text": f"document {i}"} for i in range(n)},
        queries={f"q{i}": f"query {i}" for i in range(n)},
        qrels={"train": {f"q{i}": {f"d{i}": 1} for i in range(n)}},
    )
    return TrainPairs.from_split(data, "train")


def epoch_batches(sampler: RandomBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_satisfies_protocol_and_never_refreshes() -> None:
    s = RandomBatchSampler(make_pairs(10), batch_size=4)
    assert isinstance(s, BatchSampler)
    assert not any(s.needs_refresh(e) for e in range(5))
    assert s.refresh(lambda t: None, lambda t: None) == {}  # type: ignore[arg-type,return-value]


def test_deterministic_per_seed_and_epoch() -> None:
    pairs = make_pairs(57)
    a = RandomBatchSampler(pairs, batch_size=8, seed=3)
    b = RandomBatchSampler(pairs, batch_size=8, seed=3)
    assert epoch_batches(a, 2) == epoch_batches(b, 2)
    assert epoch_batches(a, 2) == epoch_batches(a, 2)  # re-iterating the same epoch
    assert epoch_batches(a, 1) != epoch_batches(a, 2)
    assert epoch_batches(RandomBatchSampler(pairs, 8, seed=4), 2) != epoch_batches(a, 2)


@pytest.mark.parametrize("n,batch_size", [(103, 10), (100, 10), (5, 8), (1, 1)])
def test_covers_every_pair_once_and_len_is_constant(n: int, batch_size: int) -> None:
    s = RandomBatchSampler(make_pairs(n), batch_size=batch_size, seed=0, drop_last=False)
    for epoch in range(3):
        batches = epoch_batches(s, epoch)
        assert len(batches) == len(s) == -(-n // batch_size)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(len(b) == batch_size for b in batches[:-1])


def test_drop_last() -> None:
    s = RandomBatchSampler(make_pairs(103), batch_size=10, drop_last=True)
    for epoch in range(3):
        batches = epoch_batches(s, epoch)
        assert len(batches) == len(s) == 10
        assert all(len(b) == 10 for b in batches)
        flat = [i for b in batches for i in b]
        assert len(set(flat)) == 100


def test_to_batches_matches_a_loop() -> None:
    import numpy as np

    order = np.random.default_rng(0).permutation(23)
    for drop_last in (False, True):
        expected, cur = [], []
        for i in order.tolist():
            cur.append(i)
            if len(cur) == 5:
                expected.append(cur)
                cur = []
        if cur and not drop_last:
            expected.append(cur)
        assert to_batches(order, 5, drop_last) == expected


def test_works_as_a_dataloader_batch_sampler() -> None:
    s = RandomBatchSampler(make_pairs(20), batch_size=6, seed=1)
    loader = torch.utils.data.DataLoader(list(range(20)), batch_sampler=s)
    assert len(loader) == 4
    assert sorted(torch.cat(list(loader)).tolist()) == list(range(20))


def test_rejects_bad_batch_size() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        RandomBatchSampler(make_pairs(4), batch_size=0)
