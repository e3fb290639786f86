"""Candidate filters of the miners: positives, rank window, margins, score bounds.

All filters work on the ranked candidate arrays of many queries at once (no Python loop over
queries) and count what each of them removed, in the order they are applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hnm.errors import ConfigError

FILTERS: tuple[str, ...] = ("positive", "range", "absolute_margin", "relative_margin",
                            "max_score", "min_score")
# the filters a knob switches on (positives are always removed, the rank window always cuts)
SCORE_FILTERS: tuple[str, ...] = ("absolute_margin", "relative_margin", "max_score", "min_score")


@dataclass(frozen=True)
class FilterSettings:
    """The filter knobs of a miner, in one value (see :func:`select` for their meaning)."""

    range_min: int = 0
    range_max: int | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    min_score: float | None = None
    limit: int | None = None


def search_depth(settings: FilterSettings, num_negatives: int, max_positives: int,
                 n_docs: int) -> int:
    """Candidates to retrieve per query: the rank window (``range_max``, or ``range_min +
    10·num_negatives`` without one) plus room for the query's positives, within the corpus."""
    rmax = settings.range_max if settings.range_max is not None else \
        settings.range_min + 10 * num_negatives
    return max(1, min(rmax + max_positives, n_docs))


def check_reach(range_min: int, fewest_known: int, n_docs: int) -> None:
    """Refuse a ``range_min`` that skips every non-positive document of every query (every
    negative would be a random document); ``fewest_known``: the fewest known positives of a
    query in the corpus of ``n_docs``."""
    most_negatives = n_docs - fewest_known
    if range_min >= most_negatives:
        raise ConfigError(
            f"miner.range_min={range_min} skips every candidate: no training query has more "
            f"than {most_negatives} non-positive documents in the corpus of {n_docs}, so every "
            "negative would be a random document. Lower miner.range_min")


def apply_filters(idx: np.ndarray, scores: np.ndarray, positive: np.ndarray,
                  pos_score: np.ndarray, settings: FilterSettings
                  ) -> tuple[Pool, dict[str, int]]:
    """:func:`select` with the knobs of ``settings``."""
    return select(idx, scores, positive, pos_score, settings.range_min, settings.range_max,
                  settings.absolute_margin, settings.relative_margin, settings.max_score,
                  settings.min_score, settings.limit)


def dropped_by_score(removed: dict[str, int]) -> int:
    """Candidates the score filters (and any miner-specific ``removed_guide_*`` filter) removed:
    what the knobs changed, not counting positives and the rank window."""
    return int(sum(v for k, v in removed.items()
                   if k in {f"removed_{f}" for f in SCORE_FILTERS}
                   or k.startswith("removed_guide_")))


@dataclass
class Pool:
    """The surviving candidates of each query, in rank order.

    Attributes:
        idx: (nq, P) int64 corpus rows, -1 after the first ``count[i]`` entries.
        scores: (nq, P) float32 scores, NaN after the first ``count[i]`` entries.
        count: (nq,) int64 number of survivors per query.
    """

    idx: np.ndarray
    scores: np.ndarray
    count: np.ndarray


def select(idx: np.ndarray, scores: np.ndarray, positive: np.ndarray, pos_score: np.ndarray,
           range_min: int = 0, range_max: int | None = None,
           absolute_margin: float | None = None, relative_margin: float | None = None,
           max_score: float | None = None, min_score: float | None = None,
           limit: int | None = None) -> tuple[Pool, dict[str, int]]:
    """Filter ranked candidates and compact the survivors into a :class:`Pool`.

    In order: missing slots (``idx < 0``) and known positives are dropped; among the rest,
    only ranks ``range_min <= r < range_max`` (0-based, counted without the positives) are
    kept; then a candidate is dropped when ``score > pos_score - absolute_margin``
    (NV-Retriever TopK-MarginPos), when ``score > pos_score - |pos_score| * relative_margin``
    (TopK-PercPos; ``pos_score * (1 - relative_margin)`` for positive scores, and it never
    raises the bar for negative ones), when ``score > max_score`` or ``score < min_score``.
    A NaN score or positive score passes every score filter (nothing to compare with).

    Args:
        idx: (nq, k) int64 candidate corpus rows by descending score, -1 where missing.
        scores: (nq, k) float scores.
        positive: (nq, k) bool, True where the candidate is a known positive of the query.
        pos_score: (nq,) the query's positive score for the margins.
        range_min, range_max: the rank window (``range_max=None``: no upper bound).
        absolute_margin, relative_margin, max_score, min_score: ``None`` disables each.
        limit: keep at most this many survivors per query (the best ones).

    Returns:
        The pool and ``{"candidates": …, "missing": …, "removed_<filter>": …, "kept": …}``
        counts over all queries, for every filter in :data:`FILTERS` (0 when disabled); a
        candidate is counted by the first filter that drops it.
    """
    idx = np.asarray(idx, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float32)
    nq, k = idx.shape
    present = idx >= 0
    counts = {"candidates": int(present.sum()), "missing": int((~present).sum())}
    counts.update({f"removed_{name}": 0 for name in FILTERS})
    keep = present & ~np.asarray(positive, dtype=bool)
    counts["removed_positive"] = int((present & ~keep).sum())

    rank = np.cumsum(keep, axis=1) - 1
    window = rank >= range_min
    if range_max is not None:
        window &= rank < range_max
    counts["removed_range"] = _drop(keep, window)

    pos = np.asarray(pos_score, dtype=np.float32).reshape(nq, 1)
    with np.errstate(invalid="ignore"):
        if absolute_margin is not None:
            counts["removed_absolute_margin"] = _drop(keep, ~(scores > pos - absolute_margin))
        if relative_margin is not None:
            bar = pos - np.abs(pos) * relative_margin
            counts["removed_relative_margin"] = _drop(keep, ~(scores > bar))
        if max_score is not None:
            counts["removed_max_score"] = _drop(keep, ~(scores > max_score))
        if min_score is not None:
            counts["removed_min_score"] = _drop(keep, ~(scores < min_score))

    n_keep = keep.sum(axis=1)
    if limit is not None:
        n_keep = np.minimum(n_keep, limit)
    width = int(n_keep.max()) if nq and k else 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    out_idx = np.take_along_axis(idx, order, axis=1)
    out_scores = np.take_along_axis(scores, order, axis=1)
    filled = np.arange(width)[None, :] < n_keep[:, None]
    out_idx[~filled] = -1
    out_scores[~filled] = np.nan
    counts["kept"] = int(n_keep.sum())
    return Pool(out_idx, out_scores, n_keep.astype(np.int64)), counts


def _drop(keep: np.ndarray, passes: np.ndarray) -> int:
    """Clear ``keep`` where the filter fails; return how many were dropped."""
    dropped = keep & ~passes
    keep &= passes
    return int(dropped.sum())
