"""STAR: static hard negatives mixed with random corpus negatives."""

from __future__ import annotations

from typing import Any

from hnm.errors import ConfigError
from hnm.miners.dense_static import DenseStaticMiner


class STARMiner(DenseStaticMiner):
    """Static dense hard negatives plus random corpus negatives, per pair and step.

    Of each pair's ``num_negatives``, ``round(random_ratio · num_negatives)`` are random corpus
    documents (never a known positive of the query, never one of its hard negatives, redrawn
    every epoch with seed ``(seed, epoch, pair)``) and the rest come from the static hard pool
    mined once by a fixed encoder, as in :class:`~hnm.miners.dense_static.DenseStaticMiner`.

    Implements the sampling of STAR (Zhan et al., SIGIR 2021, "Optimizing Dense Retrieval
    Model Training with Hard Negatives"), which showed that static hard negatives alone make
    training unstable and that adding random negatives stabilises it. STAR draws its random
    negatives by reusing other queries' documents in the batch; here they are explicit
    documents drawn from the whole corpus (in-batch negatives still come with the loss).

    Args:
        random_ratio: fraction of each pair's negatives that are random, in [0, 1].
        **kwargs: the knobs of :class:`DenseStaticMiner` (``encoder``, ``num_negatives``, …).

    Recommended with InfoNCE; ``random_ratio`` around 0.5 with a few negatives per pair.
    """

    def __init__(self, random_ratio: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(random_ratio) <= 1.0:
            raise ConfigError(f"miner.random_ratio must be in [0, 1]; got {random_ratio}")
        self.random_ratio = float(random_ratio)

    @property
    def num_random(self) -> int:
        return int(round(self.random_ratio * self.num_negatives))

    def mined_quota(self) -> int:
        return self.num_negatives - self.num_random
