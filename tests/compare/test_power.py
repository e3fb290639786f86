"""Holm's adjustment, the minimum detectable difference and the seeds needed, against
definitions and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hnm.compare.power import holm, mde, seeds_needed


def test_holm_matches_the_step_down_definition() -> None:
    p = [0.01, 0.04, 0.03, None, 0.2]
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> monotone 0.09, 0.2*1=0.2
    adjusted = holm(p)
    assert adjusted[3] is None
    assert adjusted[:3] + adjusted[4:] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.3]) == [0.3]  # one test: unchanged
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_mde_has_the_stated_power_by_simulation() -> None:
    """Data whose true mean difference is the MDE are detected about 80% of the time."""
    rng = np.random.default_rng(0)
    n, sd = 40, 0.2
    sample = rng.normal(0, 1, n)
    sample = (sample - sample.mean()) / sample.std(ddof=1) * sd  # sd exactly 0.2
    effect = mde(sample)
    z = stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)
    assert effect == pytest.approx(z * sd / math.sqrt(n))
    p = stats.ttest_1samp(rng.normal(effect, sd, (4000, n)), 0, axis=1).pvalue
    assert abs(float((p < 0.05).mean()) - 0.8) < 0.03
    assert math.isnan(mde(np.array([0.1])))


def test_seeds_needed_from_planted_seed_noise() -> None:
    """No query-level spread, seed noise only: the seeds needed follow from the noise."""
    rng = np.random.default_rng(1)
    n, noise, effect = 200, 0.1, 0.02
    truth = rng.uniform(0.3, 0.7, n)
    def runs(shift: float, seeds: int) -> list[dict[str, float]]:
        return [{f"q{i}": float(v) for i, v in enumerate(truth + shift + rng.normal(0, noise, n))}
                for _ in range(seeds)]
    group, base = runs(effect, 3), runs(0.0, 3)
    seeds, note = seeds_needed(group, base, effect)
    z = stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)
    expected = 2 * noise ** 2 / (n * effect ** 2 / z ** 2)  # within variance of both groups
    assert note == "" and seeds is not None
    assert expected * 0.6 <= seeds <= expected * 1.6 + 1


def test_seeds_cannot_beat_query_spread_and_one_seed_is_not_enough() -> None:
    rng = np.random.default_rng(2)
    n = 50
    per_query_effect = rng.normal(0.0, 0.5, n)  # large query-level spread of the difference
    base = [{f"q{i}": 0.5 for i in range(n)} for _ in range(2)]
    group = [{f"q{i}": 0.5 + float(per_query_effect[i]) for i in range(n)} for _ in range(2)]
    seeds, note = seeds_needed(group, base, 0.01)
    assert seeds is None and "not reachable by seeds" in note
    seeds, note = seeds_needed(group[:1], base, 0.01)
    assert seeds is None and "2+ seeds" in note
