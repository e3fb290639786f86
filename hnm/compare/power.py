"""Multiple comparisons and power: Holm's adjusted p-values, the smallest difference the current
seeds and queries can detect, and how many seeds would detect the one observed.

The paired test of :mod:`hnm.compare.stats` compares ``n`` queries, each query's metric averaged
over a group's seeds. Its power follows from the spread of those per-query differences. Seeds
enter through that spread: a query's seed-averaged difference is its true difference plus
training noise, whose variance shrinks with the number of seeds. :func:`seeds_needed` separates
the two parts (the variance between seeds within a query, measured where a group has two or
more seeds, and the rest, which seeds cannot reduce) to tell how many seeds per group would
bring the minimum detectable difference down to the observed one, or that no number of seeds
can (then only more queries, or a larger effect, would).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8


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


def _z(n: int, alpha: float, power: float) -> float:
    """``t(1 - alpha/2) + t(power)`` with ``n - 1`` degrees of freedom."""
    df = max(n - 1, 1)
    return float(stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df))


def mde(diffs: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean difference a two-sided paired t-test over these ``n`` per-query
    differences detects with probability ``power`` at level ``alpha``:
    ``(t(1-α/2) + t(power)) · sd / √n``; NaN for fewer than 2 differences."""
    n = int(diffs.shape[0])
    if n < 2:
        return float("nan")
    return _z(n, alpha, power) * float(np.std(diffs, ddof=1)) / math.sqrt(n)


def seeds_needed(group: Sequence[Mapping[str, float]], base: Sequence[Mapping[str, float]],
                 observed: float, alpha: float = ALPHA, power: float = POWER
                 ) -> tuple[int | None, str]:
    """Seeds per group that would detect ``observed`` with the paired per-query test.

    Args:
        group, base: per run (seed), query id -> metric; queries common to every run count.
        observed: the observed mean difference.

    Returns:
        ``(seeds, note)``: the number of seeds, or None with the reason (fewer than two seeds
        in a group, so the seed noise cannot be measured; a zero difference; or a difference
        below what the queries allow whatever the seeds).
    """
    if len(group) < 2 or len(base) < 2:
        return None, "needs 2+ seeds per group to measure seed noise"
    queries = sorted(set.intersection(*(set(r) for r in [*group, *base])))
    n = len(queries)
    if n < 2:
        return None, "under 2 common queries"
    g = np.array([[r[q] for q in queries] for r in group], dtype=np.float64)
    b = np.array([[r[q] for q in queries] for r in base], dtype=np.float64)
    within = float(g.var(axis=0, ddof=1).mean()) + float(b.var(axis=0, ddof=1).mean())
    diffs = g.mean(axis=0) - b.mean(axis=0)
    between = max(0.0, float(diffs.var(ddof=1)) - float(g.var(axis=0, ddof=1).mean()) / len(g)
                  - float(b.var(axis=0, ddof=1).mean()) / len(b))
    if observed == 0:
        return None, "observed difference is 0"
    room = n * observed ** 2 / _z(n, alpha, power) ** 2 - between
    if room <= 0:
        return None, "not reachable by seeds: the queries' own spread hides a difference this small"
    return max(1, math.ceil(within / room)), ""
