"""Paired tests: the vectorised sign-flip test against brute force, planted effects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from hnm.compare.stats import mean_std, paired_test, seed_mean, sign_flip_pvalue


def brute_force_pvalue(diff: np.ndarray) -> float:
    observed = abs(diff.mean())
    hits = total = 0
    for signs in itertools.product((-1.0, 1.0), repeat=len(diff)):
        total += 1
        hits += abs(float(np.dot(signs, diff)) / len(diff)) >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_sign_flip_matches_brute_force(seed: int) -> None:
    diff = np.random.default_rng(seed).normal(0.1, 0.2, size=9)
    p = sign_flip_pvalue(diff, n_resamples=1000, rng=np.random.default_rng(0))
    assert p == pytest.approx(brute_force_pvalue(diff), abs=1e-12)


def test_exact_sign_flip_matches_scipy_permutation_test() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(10), rng.random(10) + 0.2
    ref = stats.permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis),
                                 permutation_type="samples", vectorized=True,
                                 n_resamples=10_000)
    assert sign_flip_pvalue(b - a, 10_000, np.random.default_rng(0)) == pytest.approx(
        ref.pvalue, abs=1e-9)


def test_random_sign_flip_approximates_exact() -> None:
    diff = np.random.default_rng(5).normal(0.05, 0.3, size=18)
    exact = sign_flip_pvalue(diff, 2 ** 18, np.random.default_rng(0))
    approx = sign_flip_pvalue(diff, 20_000, np.random.default_rng(1))
    assert approx == pytest.approx(exact, abs=0.015)


def test_planted_improvement_is_significant() -> None:
    rng = np.random.default_rng(0)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 100))}
    better = {q: v + 0.05 + float(rng.normal(0, 0.05)) for q, v in base.items()}
    res = paired_test(base, better)
    assert res is not None and res.n == 100
    assert res.p_ttest < 0.05 and res.p_random < 0.05
    assert res.ci_low > 0 and res.ci_low < res.mean_diff < res.ci_high
    assert res.mean_diff == pytest.approx(np.mean([better[q] - base[q] for q in base]))


def test_identical_and_noise_only() -> None:
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 80))}
    same = paired_test(base, dict(base))
    assert same is not None and same.p_ttest == 1.0 and same.p_random == 1.0
    # a difference shared by no query in particular: p-values stay large on average
    ps = [paired_test(base, {q: v + float(r.normal(0, 0.1)) for q, v in base.items()},
                      n_resamples=2000, seed=s).p_random
          for s, r in enumerate(np.random.default_rng(i) for i in range(20))]
    assert np.mean(ps) > 0.3 and sum(p < 0.05 for p in ps) <= 3


def test_pairs_only_common_queries() -> None:
    res = paired_test({"a": 0.0, "b": 0.0, "c": 0.5}, {"b": 1.0, "c": 1.5, "d": 9.0})
    assert res is not None and res.n == 2 and res.mean_diff == pytest.approx(1.0)
    assert paired_test({"a": 1.0}, {"a": 2.0}) is None


def test_seed_mean_averages_over_the_seeds_that_have_a_query() -> None:
    got = seed_mean([{"a": 1.0, "b": 0.0}, {"a": 0.0, "c": 1.0}])
    assert got == {"a": 0.5, "b": 0.0, "c": 1.0}


def test_mean_std() -> None:
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(np.sqrt(2)))
    assert mean_std([0.5]) == (0.5, 0.0)
