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

    Var(Δ̂) = Var_q(d̄) / n  +  Var(c̄_group − c̄_baseline)

with the second part estimated from the runs' mean metrics: from the per-seed differences when
both groups ran the same seeds (paired; a seed draws the same training pairs for every group),
else from each group's spread of run means; in both cases less the part the per-query noise
explains. The t statistic uses Welch–Satterthwaite degrees of freedom, so three seeds give a
wide interval when seed luck dominates and nearly the query-level one when it does not. With
one seed in a group the seed part cannot be estimated: the test is then over queries only and
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


@dataclass(frozen=True)
class TwoLevel:
    """The mean per-query difference of a group against the baseline.

    Attributes:
        delta: mean over queries of the seed-averaged per-query difference.
        se, df: its standard error (queries and seeds) and Welch–Satterthwaite df.
        p, ci_low, ci_high: two-sided p-value and 95% interval of ``delta``.
        se_queries, se_seeds: the two parts of ``se`` (``se² = se_queries² + se_seeds²``).
        test: :data:`TEST`, or :data:`TEST_QUERIES_ONLY` when a group has one seed.
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
    parts: list[tuple[float, float]] = [(var_q, n - 1)]  # (variance, df) pieces
    paired = paired and kg == kb and kg > 1
    if paired:
        per_seed = g.mean(axis=1) - b.mean(axis=1)
        shift = max(0.0, float(per_seed.var(ddof=1)) - (wg + wb) / n)
        parts.append((shift / kg, kg - 1))
        future_shift = shift
    elif kg > 1 and kb > 1:
        sg = max(0.0, float(g.mean(axis=1).var(ddof=1)) - wg / n)
        sb = max(0.0, float(b.mean(axis=1).var(ddof=1)) - wb / n)
        parts += [(sg / kg, kg - 1), (sb / kb, kb - 1)]
        future_shift = sg + sb
    else:
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
    seeds, note = _seeds_needed(delta, var_q, wg, wb, kg, kb, n, future_shift)
    return TwoLevel(delta=delta, se=se, df=df, p=p, ci_low=low, ci_high=high,
                    se_queries=math.sqrt(var_q), se_seeds=math.sqrt(max(0.0, var - var_q)),
                    test=TEST if math.isfinite(future_shift) else TEST_QUERIES_ONLY,
                    mde=_z(df) * se, seeds_needed=seeds, seeds_note=note, n=n,
                    seeds=(kg, kb), paired_seeds=paired)


def _seeds_needed(delta: float, var_q: float, wg: float, wb: float, kg: int, kb: int, n: int,
                  shift: float) -> tuple[int | None, str]:
    """Seeds per group (both groups alike) at which the expected standard error lets the test
    detect ``delta`` with 80% power: ``se²(k) = σ_a²/n + ((w_g + w_b)/n + shift)/k``, where
    ``σ_a²/n`` is the part of the query-level variance that more seeds do not reduce."""
    if not math.isfinite(shift):
        return None, "needs 2+ seeds per group to measure seed noise"
    if delta == 0:
        return None, "observed difference is 0"
    fixed = max(0.0, var_q - (wg / kg + wb / kb) / n)
    per_seed = (wg + wb) / n + shift
    room = delta * delta / _z(math.inf) ** 2 - fixed
    if room <= 0:
        return None, "not reachable by seeds: the queries' own spread hides a difference this small"
    return max(2, math.ceil(per_seed / room)), ""
