"""STAR: static hard negatives mixed with random corpus negatives."""

from __future__ import annotations

from typing import Any

from hnm.errors import ConfigError, check_range
from hnm.miners.dense_static import DenseStaticMiner


class STARMiner(DenseStaticMiner):
    """Static dense hard negatives plus random corpus negatives, per pair and step.

    Of each pair's ``num_negatives``, ``round(random_ratio · num_negatives)`` (Python's
    rounding: halves to even) are random corpus documents (never a known positive of the
    query, never one of the hard negatives it gets in that epoch, redrawn every epoch with
    seed ``(seed, epoch, pair)``) and the rest come from the static hard pool mined once by a
    fixed encoder, as in :class:`~hnm.miners.dense_static.DenseStaticMiner`. A ratio that
    rounds to no random negative (``0 < random_ratio``) or to no hard one
    (``random_ratio < 1``) is refused, since one half of STAR would never act; ``0`` and ``1``
    are accepted as the two ablations. :meth:`effect` adds ``negatives_random`` (the random
    half, handed to training steps) to the shared figures.

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
        check_range("miner.random_ratio", random_ratio, 0.0, 1.0)
        self.random_ratio = float(random_ratio)
        k = self.num_negatives
        if (0.0 < self.random_ratio and self.num_random == 0) or (
                self.random_ratio < 1.0 and self.num_random == k):
            raise ConfigError(
                f"miner.random_ratio={random_ratio} of miner.num_negatives={k} rounds to "
                f"{self.num_random} random and {k - self.num_random} hard negatives per pair, "
                "so one half of STAR would never act. Raise miner.num_negatives, or set "
                "miner.random_ratio to 0 or 1 for that ablation")

    @property
    def num_random(self) -> int:
        return int(round(self.random_ratio * self.num_negatives))

    def mined_quota(self) -> int:
        return self.num_negatives - self.num_random

    def effect(self) -> dict[str, float]:
        """The shared figures plus ``negatives_random`` (STAR's random half)."""
        return {**super().effect(), "negatives_random": float(self.counters["negatives_random"])}
