"""What each miner reports it changed (``effect``), the models it holds frozen, the schedule and
configuration checks that refuse a miner that could never act, and the refresh callback's
once-per-optimizer-step rule."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from hnm.errors import ConfigError
from hnm.losses.infonce import InfoNCELoss
from hnm.miners.ance import AnceMiner
from hnm.miners.base import MinerBase
from hnm.miners.denoise import DenoiseMiner
from hnm.miners.dense_static import DenseStaticMiner
from hnm.miners.star import STARMiner
from hnm.modules.refresh import Refresher, StepClock
from hnm.modules.retrieval import RetrievalModule
from hnm.modules.view import StaticView
from hnm.types import ChecksSchedule, HasFrozenModels, Phase, ReportsEffect
from tests.miners.helpers import FixedMiner, no_embed, planted


def test_effect_counts_mined_and_padded_negatives() -> None:
    data, pairs = planted(12, 3)
    rank = {"q0": ["d0", "d5"], "q1": ["d1", "d2", "d3"], "q2": ["d2", "d4", "d6", "d8"]}
    miner = FixedMiner(rank, num_negatives=4, range_max=None, verbose=False)
    assert isinstance(miner, ReportsEffect)
    assert set(miner.effect().values()) == {0.0}  # nothing handed out yet
    miner.mine(data, pairs, no_embed, no_embed)
    miner.negatives([0, 1, 2], 0, 0)
    miner.negatives([2], 1, 1)
    # pools of 1, 2 and 3 survivors for 4 negatives each
    assert miner.effect() == {"negatives_attached": 1 + 2 + 3 + 3,
                              "negatives_padded": 3 + 2 + 1 + 1, "candidates_dropped": 0}


def test_effect_counts_what_the_score_filters_dropped_and_teacher_rows() -> None:
    data, pairs = planted(30, 3)
    rank = {f"q{i}": [f"d{j}" for j in range(30)] for i in range(3)}
    # scores 1 - 0.01 * rank, positives 0.9: absolute_margin 0.05 drops scores above 0.85
    miner = FixedMiner(rank, num_negatives=2, range_max=None, absolute_margin=0.05,
                       teacher_scores=True, verbose=False)
    stats = miner.mine(data, pairs, no_embed, no_embed)
    assert stats["removed_absolute_margin"] > 0
    miner.negatives([0, 1], 0, 0)
    fx = miner.effect()
    assert fx["candidates_dropped"] == stats["removed_absolute_margin"]
    assert fx["pairs_with_teacher_scores"] == 2 and fx["negatives_attached"] == 4


class FixedStar(STARMiner):
    """STAR over a ranking given by hand (see :class:`FixedMiner`)."""

    candidates = FixedMiner.candidates

    def __init__(self, ranking: dict[str, list[str]], **kw) -> None:
        super().__init__(**kw)
        self.ranking, self.fixed_pos, self.calls = ranking, 0.9, []


def test_star_reports_its_random_half() -> None:
    data, pairs = planted(30, 3)
    rank = {f"q{i}": [f"d{j}" for j in range(30)] for i in range(3)}
    miner = FixedStar(rank, random_ratio=0.5, num_negatives=4, verbose=False)
    miner.mine(data, pairs, no_embed, no_embed)
    miner.negatives([0, 1, 2], 0, 0)
    fx = miner.effect()
    assert fx["negatives_attached"] == 6 and fx["negatives_random"] == 6
    assert fx["negatives_padded"] == 0


@pytest.mark.parametrize(("ratio", "k"), [(0.5, 1), (0.1, 4), (0.9, 1), (0.9, 4)])
def test_star_refuses_a_ratio_that_leaves_one_half_empty(ratio: float, k: int) -> None:
    with pytest.raises(ConfigError, match=r"miner\.random_ratio"):
        STARMiner(random_ratio=ratio, num_negatives=k)


@pytest.mark.parametrize(("ratio", "k"), [(0.0, 1), (1.0, 1), (0.5, 2), (0.5, 5)])
def test_star_accepts_the_ablations_and_mixed_ratios(ratio: float, k: int) -> None:
    STARMiner(random_ratio=ratio, num_negatives=k)


def test_denoise_refuses_a_guide_that_would_do_nothing() -> None:
    with pytest.raises(ConfigError, match=r"miner\.guide_margin"):
        DenoiseMiner(max_guide_score=None, guide_margin=None, teacher_scores=False)
    DenoiseMiner(max_guide_score=None, guide_margin=None, teacher_scores=True)  # scores only


# -- ANCE's schedule ------------------------------------------------------------------------
def test_ance_fraction_fixes_the_period_from_the_run_length() -> None:
    miner = AnceMiner(verbose=False)
    assert isinstance(miner, ChecksSchedule)
    miner.check_schedule(1, 32)
    assert [s for s in range(32) if miner.needs_refresh(s)] == [8, 16, 24]
    miner.check_schedule(1, 2)  # the shortest run that can refresh: before step 1
    assert [s for s in range(2) if miner.needs_refresh(s)] == [1]
    with pytest.raises(ConfigError, match=r"miner\.refresh_every_fraction=0\.25"):
        miner.check_schedule(1, 1)


def test_ance_explicit_period_wins_and_is_checked() -> None:
    miner = AnceMiner(refresh_every_n_steps=10, refresh_every_fraction=0.5, verbose=False)
    miner.check_schedule(1, 11)
    assert [s for s in range(11) if miner.needs_refresh(s)] == [10]
    with pytest.raises(ConfigError, match=r"miner\.refresh_every_n_steps=10"):
        miner.check_schedule(1, 10)
    with pytest.raises(ConfigError, match="two refreshes"):
        AnceMiner(refresh_every_n_steps=10, async_refresh=True).check_schedule(1, 20)
    AnceMiner(refresh_every_n_steps=10, async_refresh=True).check_schedule(1, 21)


def test_ance_allow_no_refresh_warns_instead(caplog) -> None:
    miner = AnceMiner(refresh_every_n_steps=100, allow_no_refresh=True, verbose=False)
    with caplog.at_level(logging.WARNING):
        miner.check_schedule(1, 32)
    assert "dense_static" in caplog.text


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_ance_fraction_is_validated(fraction: float) -> None:
    with pytest.raises(ConfigError, match="refresh_every_fraction"):
        AnceMiner(refresh_every_fraction=fraction)


def test_ance_period_falls_back_to_the_run_length_of_the_view() -> None:
    miner = AnceMiner(verbose=False)
    miner.bind(StaticView(total_steps=40))
    assert miner.needs_refresh(10) and not miner.needs_refresh(5)
    with pytest.raises(RuntimeError, match="check_schedule"):
        AnceMiner(verbose=False).needs_refresh(3)


# -- the refresh before a step --------------------------------------------------------------
class CountingMiner:
    num_negatives = 1
    phases = (Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES)

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.refreshed: list[int] = []

    def needs_refresh(self, step: int) -> bool:
        self.asked.append(step)
        return step > 0

    def refresh(self, embed_queries, embed_docs) -> dict[str, float]:
        self.refreshed.append(self.asked[-1])
        return {}

    def negatives(self, pair_idx, epoch, step):
        return [["d0"] for _ in pair_idx], None

    def close(self) -> None:
        self.closed = True


def test_miner_refresh_runs_once_per_optimizer_step(tiny_model) -> None:
    miner = CountingMiner()
    refresher = Refresher(StepClock(), progress=False)
    view = StaticView(encoder=tiny_model)
    for step in (0, 0, 1, 1, 2, 2):  # accumulate_grad_batches=2: two micro-batches a step
        view.step = step
        refresher.before_step([miner], view, lambda prefix, stats: None, rank_zero=True)
    assert miner.refreshed == [1, 2] and miner.asked == [0, 1, 2]
    assert refresher.miner_refreshes == 2


def test_miner_refresh_closes_a_background_refresh_at_the_end(tiny_model) -> None:
    miner = CountingMiner()
    _module(tiny_model, miner).on_train_end()
    assert miner.closed


# -- frozen models --------------------------------------------------------------------------
def _module(model, miner):
    pairs = planted(6, 2)[1]
    return RetrievalModule(copy.deepcopy(model), InfoNCELoss(), pairs, miner=miner)


@pytest.mark.parametrize("kind", ["dense_static_encoder", "denoise_guide"])
def test_a_miners_own_models_are_frozen_by_the_module(tiny_model, kind: str) -> None:
    model = copy.deepcopy(tiny_model)
    miner = (DenseStaticMiner(encoder=model, verbose=False) if kind == "dense_static_encoder"
             else DenoiseMiner(guide=model, verbose=False))
    assert isinstance(miner, HasFrozenModels) and miner.frozen_models() == [model]
    module = _module(tiny_model, miner)
    model.train()
    module.apply_modes()
    assert not any(m.training for m in model.modules())
    assert all(m.training for m in module.encoder.modules())


def test_a_plain_miner_holds_no_model() -> None:
    assert MinerBase().frozen_models() == []


def test_ance_snapshot_is_frozen_while_held(tiny_model) -> None:
    from hnm.data.dataset import TrainPairs
    from hnm.encoders import embed_fn
    from tests.conftest import make_data

    pairs = TrainPairs.from_split(make_data(), "train")
    miner = AnceMiner(refresh_every_n_steps=1, async_refresh=True, num_negatives=2,
                      verbose=False)
    model = copy.deepcopy(tiny_model)
    f = embed_fn(model, progress=False)
    miner.mine(pairs.data, pairs, f, f)
    miner.bind(StaticView(encoder=model))
    assert miner.frozen_models() == []
    miner.refresh(f, f)
    (snap,) = miner.frozen_models()
    assert snap is not model and not snap.training
    assert not any(p.requires_grad for p in snap.parameters())
    before = miner.pool
    miner.refresh(f, f)  # swaps in the first snapshot's pass, starts another
    assert miner.pool is not before and miner.effect()["refreshes"] == 1
    miner.close()
    assert miner.frozen_models() == []


def test_search_leaves_the_pool_in_use_alone() -> None:
    data, pairs = planted(30, 3)
    rank = {f"q{i}": [f"d{j}" for j in range(30)] for i in range(3)}
    miner = FixedMiner(rank, num_negatives=2, verbose=False)
    miner.mine(data, pairs, no_embed, no_embed)
    pool, stats = miner.pool, dict(miner.last_stats)
    mined = miner.search(no_embed, no_embed)
    assert miner.pool is pool and miner.last_stats == stats
    np.testing.assert_array_equal(mined.pool.idx, pool.idx)
