"""Paired significance tests of per-query metrics, and seed statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedResult:
    """A paired comparison of ``other`` against ``base`` over the queries both evaluated.

    Attributes:
        n: number of paired queries.
        mean_diff: mean of ``other - base`` per query.
        ci_low, ci_high: 95% bootstrap (BCa) interval of ``mean_diff``.
        p_ttest: two-sided p-value of the paired t-test.
        p_random: two-sided p-value of the paired randomisation (sign-flip) test.
    """

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_ttest: float
    p_random: float


def seed_mean(per_run: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per query, the mean of a metric over the runs (seeds) that evaluated it.

    Runs with different seeds may evaluate different query subsets (``max_queries``); a query
    counts with the seeds that have it.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for values in per_run:
        for q, v in values.items():
            sums[q] = sums.get(q, 0.0) + float(v)
            counts[q] = counts.get(q, 0) + 1
    return {q: sums[q] / counts[q] for q in sums}


def paired_test(base: Mapping[str, float], other: Mapping[str, float],
                n_resamples: int = 10_000, seed: int = 0) -> PairedResult | None:
    """Compare per-query values of ``other`` with ``base`` on their common queries.

    Two tests of "the mean per-query difference is 0": the paired t-test
    (``scipy.stats.ttest_rel``) and Fisher's randomisation test, which flips the sign of each
    query's difference at random (:func:`sign_flip_pvalue`), the test Smucker et al. (CIKM
    2007) recommend for IR. The 95% interval of the mean difference is a BCa bootstrap
    (``scipy.stats.bootstrap``). Where every difference is 0 both p-values are 1; where
    the differences are all equal and non-zero the t-test is undefined and its p-value is 0.

    Returns None when fewer than 2 queries are common.
    """
    queries = sorted(set(base) & set(other))
    if len(queries) < 2:
        return None
    a = np.array([base[q] for q in queries], dtype=np.float64)
    b = np.array([other[q] for q in queries], dtype=np.float64)
    diff = b - a
    mean = float(diff.mean())
    if np.allclose(diff, diff[0], rtol=0.0, atol=1e-12):
        p = 1.0 if abs(diff[0]) <= 1e-12 else 0.0
        return PairedResult(len(queries), mean, mean, mean, p, p)
    p_t = float(stats.ttest_rel(b, a).pvalue)
    rng = np.random.default_rng(seed)
    p_random = sign_flip_pvalue(diff, n_resamples, rng)
    boot = stats.bootstrap((diff,), np.mean, n_resamples=min(n_resamples, 5000),
                           confidence_level=0.95, method="BCa", random_state=rng)
    low, high = boot.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa fails on degenerate samples
        low, high = np.percentile(boot.bootstrap_distribution, [2.5, 97.5])
    return PairedResult(len(queries), mean, float(low), float(high),
                        p_t if math.isfinite(p_t) else 1.0, p_random)


def sign_flip_pvalue(diff: np.ndarray, n_resamples: int, rng: np.random.Generator,
                     chunk: int = 1000) -> float:
    """Two-sided p-value of the paired randomisation test of ``mean(diff) == 0``.

    Under the null each query's difference is as likely to have either sign. Exact (all
    ``2**n`` sign vectors) when ``2**n <= n_resamples``; otherwise ``n_resamples`` random sign
    vectors with the add-one estimate ``(1 + #{|null| >= |observed|}) / (1 + n_resamples)``.
    Memory is bounded by ``chunk * n`` floats.

    Args:
        diff: (n,) per-query differences.
    """
    n = diff.shape[0]
    observed = abs(float(diff.mean())) - 1e-12
    if n < 63 and 2 ** n <= n_resamples:
        total = 2 ** n
        hits = 0
        for start in range(0, total, chunk):
            codes = np.arange(start, min(start + chunk, total), dtype=np.int64)
            signs = 1.0 - 2.0 * ((codes[:, None] >> np.arange(n)) & 1)
            hits += int((np.abs(signs @ diff) / n >= observed).sum())
        return hits / total
    hits = 0
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(m, n))
        hits += int((np.abs(signs @ diff) / n >= observed).sum())
    return (1 + hits) / (1 + n_resamples)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0
