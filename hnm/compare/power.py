"""The difference a comparison reports, with both sources of its uncertainty: which queries were
evaluated, and which seeds trained the models. Also Holm's adjustment, the minimum detectable
difference and the seeds that would detect the observed one.

A run's per-query metric is modelled as ``x[q, s] = μ_q + c_s + e[q, s]``: the query's own
difficulty, a shift ``c_s`` shared by every query of the run (a seed's luck: the whole model
is a little better or worse) and per-query training noise ``e``. Averaged over a group's ``k``
seeds and paired by query, the difference ``d̄_q`` varies across queries by the true per-query
effect and ``e``; the run-wide shifts move every ``d̄_q`` alike, so a test over queries alone
never sees them and is too confident (with MiniLM's run-to-run spread on ``stdlib_code``, a
query-only paired t-test finds a difference in 17–39% of comparisons of identical strategies
at α = 0.05). The variance of the mean difference is therefore

    Var(Δ̂) = σ_a²/n + v_d/k            (paired by seed: v_d, the per-seed differences' variance)
    Var(Δ̂) = σ_a²/n + v_g/k_g + v_b/k_b  (otherwise: each group's variance of run means)

where ``σ_a²/n`` is the part more seeds do not reduce (the queries' own spread of the true
difference: ``Var_q(d̄)/n`` less the per-query training noise, ``w_d/(k·n)`` paired, with
``w_d`` the difference's mean variance across seeds since the same seed draws the same
training pairs for both groups, else ``(w_g/k_g + w_b/k_b)/n``), and the run-level parts hold
per-query noise and seed luck together, as estimated from the runs' means. The t statistic
uses Welch–Satterthwaite degrees of freedom over these parts, so three seeds give a wide
interval when the runs' spread dominates and nearly the query-level one when the queries'
spread of the true difference does (the usual case on retrieval data: per-query differences
spread far more than run means). The run-level part is used as estimated, never first reduced
by the per-query noise and floored at zero: that variant let a 2-df variance estimate fall to 0
by chance, the degrees of freedom jump to the queries' and found a difference between identical
strategies 9–11% of the time at α = 0.05 where a seed's luck dominates; and subtracting both
groups' noise as if independent when they ran the same seeds called 12–26% of null comparisons
significant (``tests/compare/test_power.py``). In simulations with ``stdlib_code``'s variances
(per-query noise sd 0.07, per-query effect sd 0.03–0.13, seed shift sd 0.005, 486 queries, 3
seeds) the test finds a difference between identical strategies 5–7% of the time. With one
seed in a group its run-level variance is taken from the other group's runs (equal seed
variance: ``v·(1/k_g + 1/k_b)``, with that group's ``k − 1`` df), and the test says so; with
one seed in both groups it cannot be estimated at all: the test is then over queries only and
says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
TEST = "t-test over queries and seeds"
TEST_QUERIES_ONLY = "paired t-test over queries (1 seed: seed variation not estimated)"
TEST_ONE_SEED = ("t-test over queries and seeds (a 1-seed group: its seed variation taken from "
                 "the other group's seeds)")


@dataclass(frozen=True)
class TwoLevel:
    """The mean per-query difference of a group against the baseline.

    Attributes:
        delta: mean over queries of the seed-averaged per-query difference.
        se, df: its standard error (queries and seeds) and Welch–Satterthwaite df.
        p, ci_low, ci_high: two-sided p-value and 95% interval of ``delta``.
        se_queries, se_seeds: the two parts of ``se`` (``se² = se_queries² + se_seeds²``):
            the queries' own spread (more seeds do not reduce it) and the runs' (with one
            seed in both groups, ``se_queries`` is the whole test over queries).
        test: :data:`TEST`; :data:`TEST_ONE_SEED` when one group has one seed (its seed
            variance borrowed from the other's); :data:`TEST_QUERIES_ONLY` when both have one.
        mde: the smallest difference this design detects with 80% power at α = 0.05.
        seeds_needed: seeds per group that would detect ``delta`` (None: see ``seeds_note``).
        n, seeds: queries and (group, baseline) seeds used.
    """

    delta: float
    se: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    se_queries: float
    se_seeds: float
    test: str
    mde: float
    seeds_needed: int | None
    seeds_note: str
    n: int
    seeds: tuple[int, int]
    paired_seeds: bool


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (same order; None stays None): the i-th smallest of
    ``m`` p-values is multiplied by ``m - i`` and the results made monotone, capped at 1.
    With one p-value it is returned unchanged."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    out: list[float | None] = [None] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda j: pvalues[j])):  # type: ignore[arg-type]
        adjusted = min(1.0, (m - rank) * float(pvalues[i]))  # type: ignore[arg-type]
        running = max(running, adjusted)
        out[i] = running
    return out


def _z(df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))


def _matrix(runs: Sequence[Mapping[str, float]], queries: list[str]) -> np.ndarray:
    return np.array([[r[q] for q in queries] for r in runs], dtype=np.float64)


def _within(m: np.ndarray) -> float:
    """Mean over queries of the variance across seeds (0 with one seed)."""
    return float(m.var(axis=0, ddof=1).mean()) if m.shape[0] > 1 else 0.0


def two_level(group: Sequence[Mapping[str, float]], base: Sequence[Mapping[str, float]],
              paired: bool = False) -> TwoLevel | None:
    """Test ``group`` against ``base`` (per run, query id -> metric; runs in seed order, and
    ``paired`` when both lists hold the same seeds in the same order). Queries common to every
    run count. None with fewer than 2 common queries."""
    common = set.intersection(*(set(r) for r in [*group, *base])) if group and base else set()
    queries = sorted(common)
    n = len(queries)
    if n < 2:
        return None
    g, b = _matrix(group, queries), _matrix(base, queries)
    kg, kb = g.shape[0], b.shape[0]
    d = g.mean(axis=0) - b.mean(axis=0)
    delta = float(d.mean())
    var_q = float(d.var(ddof=1)) / n
    wg, wb = _within(g), _within(b)
    paired = paired and kg == kb and kg > 1
    if paired:
        # the same seed draws the same training pairs for both groups, so their per-query
        # noise is correlated: the noise of the difference is measured on the difference
        wg = wb = _within(g - b) / 2
    elif min(kg, kb) == 1 < max(kg, kb):  # a one-seed group: its runs' noise taken as the other's
        wg = wb = max(wg, wb)
    # the part more seeds do not reduce (the queries' own spread of the true difference)
    parts: list[tuple[float, float]] = [  # (variance, df) pieces
        (max(0.0, var_q - (wg / kg + wb / kb) / n), n - 1)]
    if paired:
        per_seed = g.mean(axis=1) - b.mean(axis=1)
        v = float(per_seed.var(ddof=1))
        parts.append((v / kg, kg - 1))
        future_shift = max(0.0, v - (wg + wb) / n)
    elif kg > 1 and kb > 1:
        vg, vb = float(g.mean(axis=1).var(ddof=1)), float(b.mean(axis=1).var(ddof=1))
        parts += [(vg / kg, kg - 1), (vb / kb, kb - 1)]
        future_shift = max(0.0, vg - wg / n) + max(0.0, vb - wb / n)
    elif kg > 1 or kb > 1:
        # one group has a single seed: its run carries a seed's luck no test over queries can
        # see; take the other group's run-to-run spread as its own (equal seed variance)
        several = g if kg > 1 else b
        v = float(several.mean(axis=1).var(ddof=1))
        parts.append((v * (1 / kg + 1 / kb), several.shape[0] - 1))
        future_shift = 2 * max(0.0, v - wg / n)
    else:
        parts = [(var_q, n - 1)]
        future_shift = float("nan")
    var = sum(v for v, _ in parts)
    se = math.sqrt(var)
    denom = sum(v * v / f for v, f in parts if v > 0)
    df = var * var / denom if denom > 0 else float(n - 1)
    if se == 0:
        p = 1.0 if abs(delta) <= 1e-12 else 0.0
        low = high = delta
    else:
        p = float(2 * stats.t.sf(abs(delta) / se, df))
        half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
        low, high = delta - half, delta + half
    seeds, note = _seeds_needed(delta, var_q, wg, wb, kg, kb, n, future_shift, paired)
    return TwoLevel(delta=delta, se=se, df=df, p=p, ci_low=low, ci_high=high,
                    se_queries=math.sqrt(parts[0][0]),
                    se_seeds=math.sqrt(max(0.0, var - parts[0][0])),
                    test=(TEST_QUERIES_ONLY if not math.isfinite(future_shift) else
                          TEST if min(kg, kb) > 1 else TEST_ONE_SEED),
                    mde=_z(df) * se, seeds_needed=seeds, seeds_note=note, n=n,
                    seeds=(kg, kb), paired_seeds=paired)


def _seeds_needed(delta: float, var_q: float, wg: float, wb: float, kg: int, kb: int, n: int,
                  shift: float, paired: bool) -> tuple[int | None, str]:
    """Seeds per group (both groups alike) at which the expected standard error lets the test
    detect ``delta`` with 80% power: ``se²(k) = σ_a²/n + ((w_g + w_b)/n + shift)/k``, where
    ``σ_a²/n`` is the part of the query-level variance that more seeds do not reduce, with the
    t quantiles of the degrees of freedom that design would have (the run-level part: ``k − 1``
    paired, ``2(k − 1)`` unpaired)."""
    if not math.isfinite(shift):
        return None, "needs 2+ seeds per group to measure seed noise"
    if delta == 0:
        return None, "observed difference is 0"
    fixed = max(0.0, var_q - (wg / kg + wb / kb) / n)
    per_seed = (wg + wb) / n + shift
    if delta * delta <= _z(n - 1) ** 2 * fixed:
        return None, "not reachable by seeds: the queries' own spread hides a difference this small"
    k = np.arange(2, 1001)
    run = per_seed / k
    var = fixed + run
    denom = (fixed * fixed / (n - 1) if fixed > 0 else 0.0) + run * run / (
        (k - 1) * (1 if paired else 2))
    df = np.where(denom > 0, var * var / np.where(denom > 0, denom, 1.0), n - 1)
    z = stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)
    enough = np.flatnonzero(delta * delta >= z * z * var)
    if not len(enough):
        return None, "more than 1,000 seeds per group"
    return int(k[enough[0]]), ""
