"""What a miner changed so far in a run: cumulative counts behind its ``effect()``."""

from __future__ import annotations

import numpy as np

SHARED: tuple[str, ...] = ("negatives_attached", "negatives_padded", "negatives_random",
                           "candidates_dropped", "pairs_with_teacher_scores")


class MinerCounters:
    """Cumulative counts by name: the shared ones (:data:`SHARED`) and a miner's own.

    Args:
        extra: names of the miner's own counts (``refreshes``, ``queries_retrieved_live``, …).
    """

    def __init__(self, *extra: str) -> None:
        self.counts: dict[str, int] = {k: 0 for k in (*SHARED, *extra)}

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def __setitem__(self, key: str, value: int) -> None:
        self.counts[key] = int(value)

    def served(self, pool_counts: np.ndarray, quota: int, num_negatives: int) -> None:
        """Count a step's negatives: of each pair's ``quota`` mined ones, those its pool of
        ``pool_counts`` held and the padding; the rest of ``num_negatives`` are random by
        design."""
        from_pool = np.minimum(pool_counts, quota)
        self.counts["negatives_attached"] += int(from_pool.sum())
        self.counts["negatives_padded"] += int((quota - from_pool).sum())
        self.counts["negatives_random"] += (num_negatives - quota) * len(pool_counts)

    def figures(self, keys: tuple[str, ...] | list[str]) -> dict[str, float]:
        """The counts of ``keys`` as floats (``strategy/miner/<key>`` in ``metrics.json``)."""
        return {k: float(self.counts[k]) for k in keys}
