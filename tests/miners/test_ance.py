"""ANCE: refreshes re-mine with the current weights; the asynchronous path swaps in the
negatives of the snapshot taken one period earlier."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hnm.data.dataset import TrainPairs
from hnm.encoders import embed_fn, tiny_encoder
from hnm.errors import ConfigError
from hnm.miners.ance import AnceMiner
from hnm.modules.view import StaticView
from tests.conftest import make_data

K = 3


@pytest.fixture(scope="module")
def weights():
    """State dicts of three different tiny encoders (the planted changes)."""
    return [tiny_encoder(seed=s).state_dict() for s in (0, 1, 2)]


def brute_force(model, pairs: TrainPairs, k: int = K) -> dict[str, list[str]]:
    """Each unique query's top-k non-positive documents, by a plain loop over the corpus."""
    data = pairs.data
    doc_ids = list(data.corpus)
    f = embed_fn(model, progress=False)
    d = f([data.doc_text(x) for x in doc_ids])
    out = {}
    for qid in dict.fromkeys(pairs.qids):
        s = d @ f([data.queries[qid]])[0]
        order = sorted(range(len(doc_ids)), key=lambda j: (-s[j], j))
        out[qid] = [doc_ids[j] for j in order if doc_ids[j] not in pairs.positives[qid]][:k]
    return out


def mined(miner: AnceMiner, pairs: TrainPairs) -> dict[str, list[str]]:
    neg, _ = miner.negatives(range(len(pairs)), 0, 0)
    return dict(zip(pairs.qids, neg))


def setup(tiny_model, **kw):
    pairs = TrainPairs.from_split(make_data(), "train")
    model = copy.deepcopy(tiny_model)
    miner = AnceMiner(num_negatives=K, range_max=None, sampling_strategy="top", verbose=False,
                      **kw)
    f = embed_fn(model, progress=False)
    miner.mine(pairs.data, pairs, f, f)
    return miner, model, pairs


def test_schedule_and_validation() -> None:
    m = AnceMiner(refresh_every_n_steps=4, verbose=False)
    assert [s for s in range(13) if m.needs_refresh(s)] == [4, 8, 12]
    with pytest.raises(ConfigError, match="refresh_every_n_steps"):
        AnceMiner(refresh_every_n_steps=0)


def test_refresh_uses_the_current_weights(tiny_model, weights) -> None:
    miner, model, pairs = setup(tiny_model)
    start = brute_force(model, pairs)
    assert mined(miner, pairs) == start
    model.load_state_dict(weights[1])  # the planted change: training moved the encoder
    f = embed_fn(model, progress=False)
    stats = miner.refresh(f, f)
    after = brute_force(model, pairs)
    assert after != start  # the change matters for the mined set...
    assert mined(miner, pairs) == after  # ...and the refresh follows it
    assert stats["time_encode_s"] > 0 and "time_search_s" in stats


def test_async_refresh_swaps_in_the_snapshot_one_period_later(tiny_model, weights) -> None:
    miner, model, pairs = setup(tiny_model, async_refresh=True, refresh_every_n_steps=2,
                                encode_chunk=7)
    miner.bind(StaticView(encoder=model))
    start = brute_force(model, pairs)

    def never(texts):
        raise AssertionError("the asynchronous refresh must encode with its snapshot")

    model.load_state_dict(weights[1])
    at_step_2 = brute_force(model, pairs)
    first = miner.refresh(never, never)  # step 2: snapshot of weights[1], in the background
    assert first["swapped"] == 0.0 and mined(miner, pairs) == start
    model.load_state_dict(weights[2])  # training goes on while the thread encodes
    second = miner.refresh(never, never)  # step 4: the step-2 negatives arrive
    assert second["swapped"] == 1.0 and second["time_encode_s"] > 0
    assert mined(miner, pairs) == at_step_2 != start
    assert at_step_2 != brute_force(model, pairs)
    miner.close()


def test_async_without_a_module_falls_back_to_synchronous(tiny_model, weights) -> None:
    miner, model, pairs = setup(tiny_model, async_refresh=True)
    model.load_state_dict(weights[1])
    f = embed_fn(model, progress=False)
    miner.refresh(f, f)
    assert mined(miner, pairs) == brute_force(model, pairs)


def test_async_job_stops_when_training_is_over(tiny_model) -> None:
    miner, model, pairs = setup(tiny_model, async_refresh=True, encode_chunk=1)
    miner.bind(StaticView(encoder=model, over=True))
    before = miner.pool
    miner.refresh(None, None)  # type: ignore[arg-type]
    stats = miner.refresh(None, None)  # type: ignore[arg-type]
    assert stats["swapped"] == 0.0 and miner.pool is before
    miner.close()
    assert np.all(miner.pool.count == K)
