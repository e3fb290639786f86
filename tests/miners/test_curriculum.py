"""The difficulty curriculum of every mining miner (``miner.schedule``): the sampling window
slides over the pool's ranks as scheduled, and ``constant`` is today's behaviour exactly."""

from __future__ import annotations

import pytest

from hnm.errors import ConfigError
from tests.miners.helpers import FixedMiner, no_embed, planted
from tests.miners.test_base import ranking


def mined(steps: int = 11, **kw) -> tuple[FixedMiner, list[str]]:
    data, pairs = planted(30, 4)
    miner = FixedMiner(ranking(30, 4), verbose=False, **kw)
    miner.check_schedule(1, steps)
    miner.mine(data, pairs, no_embed, no_embed)
    q0 = pairs.qids.index("q0")
    # q0's pool in rank order (its positive d0 removed): d3, d6, d9, …
    pool = [miner.doc_ids[int(r)] for r in miner.pool.idx[q0, :int(miner.pool.count[q0])]]
    return miner, pool


@pytest.mark.parametrize("strategy", ["top", "random"])
def test_constant_is_todays_behaviour_exactly(strategy) -> None:
    base, _ = mined(num_negatives=3, range_max=12, sampling_strategy=strategy)
    same, _ = mined(num_negatives=3, range_max=12, sampling_strategy=strategy,
                    schedule="constant", schedule_width=6)
    for epoch in range(3):
        for step in (0, 5, 10):
            assert same.negatives(range(4), epoch, step) == base.negatives(range(4), epoch, step)
    assert same.pool.idx.shape == base.pool.idx.shape  # top's pool still limited to its quota


def test_easy_to_hard_window_moves_from_the_last_ranks_to_the_first() -> None:
    # 9 survivors, a window of 3 (top), 7 steps: start = round((1 - step / 6) * 6) = 6 - step
    miner, pool = mined(steps=7, num_negatives=3, range_max=12, sampling_strategy="top",
                        schedule="easy_to_hard")
    assert len(pool) == 9
    for step in range(7):
        assert miner.negatives([0], 0, step)[0][0] == pool[6 - step:9 - step], step
    assert miner.negatives([0], 0, 0)[0][0] == pool[6:9]   # easiest first
    assert miner.negatives([0], 0, 6)[0][0] == pool[0:3]   # hardest at the end
    fx = miner.effect()
    assert fx["schedule_start_first"] == 6 and fx["schedule_start_last"] == 0


def test_hard_to_easy_is_the_reverse() -> None:
    miner, pool = mined(num_negatives=2, range_max=12, sampling_strategy="top",
                        schedule="hard_to_easy", schedule_width=4)
    starts = []
    for step in range(11):
        row = miner.negatives([0], 0, step)[0][0]
        starts.append(pool.index(row[0]))
        assert row == pool[starts[-1]:starts[-1] + 2]
    assert starts == [round(step / 10 * 5) for step in range(11)]  # 9 survivors, 4 wide


def test_random_draws_inside_the_moving_window() -> None:
    miner, pool = mined(num_negatives=2, range_max=12, sampling_strategy="random",
                        schedule="easy_to_hard")  # window of 4 ranks
    for step in (0, 5, 10):
        start = round((1 - step / 10) * 5)  # 9 survivors, a window of 4
        window = set(pool[start:start + 4])
        seen = set()
        for epoch in range(6):
            row = miner.negatives([0], epoch, step)[0][0]
            assert len(row) == 2 and set(row) <= window, (step, row)
            seen |= set(row)
        assert len(seen) > 2  # the epochs draw different negatives of the window


def test_a_window_that_cannot_move_or_a_one_step_run_is_refused() -> None:
    with pytest.raises(ConfigError, match="miner.schedule=easy_to_hard"):
        mined(num_negatives=3, range_max=3, sampling_strategy="top", schedule="easy_to_hard")
    with pytest.raises(ConfigError, match="1 optimizer step"):
        mined(steps=1, num_negatives=3, range_max=12, schedule="hard_to_easy")
    with pytest.raises(ConfigError, match="miner.schedule="):
        mined(num_negatives=3, schedule="sometimes")
    with pytest.raises(ConfigError, match="miner.schedule_width"):
        mined(num_negatives=3, schedule="easy_to_hard", schedule_width=2)
