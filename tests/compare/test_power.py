"""Holm's adjustment and the test over queries and seeds, against definitions and simulation:
identical strategies must be found different about 5% of the time at α = 0.05, also when a
seed's luck shifts every query of a run alike (a test over queries alone fails that)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hnm.compare.power import TEST, TEST_QUERIES_ONLY, holm, two_level
from hnm.compare.stats import seed_mean

N = 400  # queries


def test_holm_matches_the_step_down_definition() -> None:
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> monotone 0.09, 0.2*1=0.2
    adjusted = holm([0.01, 0.04, 0.03, None, 0.2])
    assert adjusted[3] is None
    assert adjusted[:3] + adjusted[4:] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.3]) == [0.3]  # one test: unchanged
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def _runs(rng, truth, effect, k, shift_sd, noise_sd):
    """k runs: query difficulty + effect + a run-wide shift (a seed's luck) + per-query noise."""
    return [{f"q{i}": float(v) for i, v in enumerate(truth + effect + c +
                                                       rng.normal(0, noise_sd, len(truth)))}
            for c in rng.normal(0, shift_sd, k)]


@pytest.mark.parametrize("paired", [False, True])
def test_no_effect_is_found_about_5_percent_of_the_time(paired: bool) -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.2, 0.9, N)
    found = found_queries_only = 0
    trials = 300
    for _ in range(trials):
        g = _runs(rng, truth, 0.0, 3, 0.002, 0.03)
        b = _runs(rng, truth, 0.0, 3, 0.002, 0.03)
        found += two_level(g, b, paired=paired).p < 0.05
        a, c = seed_mean(b), seed_mean(g)
        found_queries_only += stats.ttest_rel([c[q] for q in a], list(a.values())).pvalue < 0.05
    assert found / trials < 0.09  # ~0.05 up to simulation noise
    assert found_queries_only / trials > 0.2  # the flaw this test guards against


def test_interval_covers_the_true_effect_and_seeds_needed_shrink_with_it() -> None:
    """The 95% interval covers a planted effect about 95% of the time; the median reported
    MDE is the one the planted variances imply; more seeds are needed for smaller effects."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.2, 0.9, N)
    shift, noise, k, effect = 0.001, 0.03, 3, 0.004
    results = [two_level(_runs(rng, truth, effect, k, shift, noise),
                         _runs(rng, truth, 0.0, k, shift, noise)) for _ in range(300)]
    assert all(r.test == TEST for r in results)
    covered = sum(r.ci_low <= effect <= r.ci_high for r in results) / len(results)
    assert 0.9 <= covered <= 0.99
    se_true = math.sqrt(2 * noise ** 2 / (k * N) + 2 * shift ** 2 / k)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert float(np.median([r.mde for r in results])) == pytest.approx(z * se_true, rel=0.3)
    small = two_level(_runs(rng, truth, 0.002, k, shift, noise),
                      _runs(rng, truth, 0.0, k, shift, noise))
    large = two_level(_runs(rng, truth, 0.008, k, shift, noise),
                      _runs(rng, truth, 0.0, k, shift, noise))
    assert small.seeds_needed is not None and large.seeds_needed is not None
    assert large.seeds_needed < small.seeds_needed


def test_query_spread_cannot_be_beaten_by_seeds_and_one_seed_is_flagged() -> None:
    rng = np.random.default_rng(2)
    effect = rng.normal(0.0, 0.5, N)  # a large per-query spread of the true difference
    base = [{f"q{i}": 0.5 for i in range(N)} for _ in range(2)]
    group = [{f"q{i}": 0.5 + float(effect[i]) + 0.001 * s for i in range(N)} for s in range(2)]
    res = two_level(group, base)
    assert res.seeds_needed is None and "not reachable by seeds" in res.seeds_note
    one = two_level(group[:1], base)
    assert one.test == TEST_QUERIES_ONLY and one.seeds_needed is None
    # with one seed the test is the paired t-test over queries
    ref = stats.ttest_rel([group[0][f"q{i}"] for i in range(N)], [0.5] * N)
    assert one.p == pytest.approx(float(ref.pvalue), rel=1e-6)
    assert math.isfinite(one.mde)
