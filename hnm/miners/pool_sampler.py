"""Which pool rows a training pair gets in an epoch: ``top`` or ``random`` sampling, the
difficulty curriculum's sliding window, and padding with random corpus documents."""

from __future__ import annotations

import numpy as np

from hnm.errors import ConfigError, DataError

SAMPLING: tuple[str, ...] = ("top", "random")
SCHEDULES: tuple[str, ...] = ("constant", "easy_to_hard", "hard_to_easy")


def curriculum_window(count: int, width: int, progress: float, schedule: str
                      ) -> tuple[int, int]:
    """The ``[start, stop)`` pool ranks of a curriculum window of ``width`` over a pool of
    ``count`` at training ``progress`` in [0, 1]: it starts at ``round((1 - f)·(count - w))``
    for ``easy_to_hard`` and ``round(f·(count - w))`` for ``hard_to_easy``."""
    width = min(width, count)
    room = count - width
    f = progress if schedule == "hard_to_easy" else 1.0 - progress
    start = int(round(f * room))
    return start, start + width


def random_rows(seed: tuple[int, ...], n: int, n_docs: int, banned: set[int],
                positives: set[int], who: str) -> list[int]:
    """``n`` distinct random corpus rows not in ``banned`` (seeded by ``seed``); repeats, and
    draws from ``banned`` rows other than ``positives``, only when the corpus has too few
    others. ``who`` names the query in the error when every document is a positive."""
    allowed = n_docs - len(banned)
    rng = np.random.default_rng(seed)
    if allowed < n:
        pool = [i for i in range(n_docs) if i not in banned] or \
            [i for i in range(n_docs) if i not in positives]
        if not pool:
            raise DataError(f"query {who!r}: every corpus document is a known positive, so no "
                            "negative can be drawn for it")
        return [int(x) for x in rng.choice(pool, size=n, replace=len(pool) < n)]
    out: list[int] = []
    banned = set(banned)
    while len(out) < n:
        for x in rng.integers(0, n_docs, size=2 * n + 8):
            if int(x) not in banned:
                banned.add(int(x))
                out.append(int(x))
                if len(out) == n:
                    break
    return out


class PoolSampler:
    """The pool positions of one pair's negatives in an epoch, deterministic in
    ``(seed, epoch, pair)``, and the curriculum's clock (see
    :class:`~hnm.miners.base.MinerBase` for the rules).

    Args:
        strategy: ``top`` (the best ``quota``) or ``random`` (``quota`` drawn per epoch).
        schedule: ``constant`` (no curriculum), ``easy_to_hard`` or ``hard_to_easy``.
        width: pool ranks of the curriculum's window (None: the quota for ``top``, twice it
            for ``random``).
        seed: the seed of all sampling.
    """

    def __init__(self, strategy: str, schedule: str, width: int | None, seed: int) -> None:
        self.strategy, self.schedule, self.width, self.seed = strategy, schedule, width, seed
        self.total_steps: int | None = None
        self.progress = 0.0
        self.starts: list[float] = []  # mean window start of the first and latest step

    def window_width(self, quota: int) -> int:
        """Pool ranks of the curriculum's sampling window."""
        if self.width is not None:
            return self.width
        return quota if self.strategy == "top" else 2 * quota

    def check_schedule(self, steps: int) -> None:
        """Remember the run's optimizer steps (the curriculum's clock); refuse a curriculum in
        a run of one step, where its window could not move."""
        self.total_steps = int(steps)
        if self.schedule != "constant" and steps < 2:
            raise ConfigError(f"miner.schedule={self.schedule} but the run has {steps} "
                              "optimizer step, so the window never moves; lengthen the run or "
                              "set miner.schedule=constant")

    def check_window(self, counts: np.ndarray, quota: int) -> None:
        """Refuse a curriculum whose window covers every query's whole pool (it cannot move)."""
        if self.schedule == "constant" or quota == 0:
            return
        widest = int(counts.max()) if len(counts) else 0
        if widest <= self.window_width(quota):
            raise ConfigError(
                f"miner.schedule={self.schedule}: the widest pool holds {widest} candidates and "
                f"the window {self.window_width(quota)} ranks (miner.schedule_width), so the "
                "window covers every pool and cannot move from easy to hard. Widen the pools "
                "(miner.range_max) or narrow the window (miner.schedule_width)")

    def step(self, step: int, counts: np.ndarray, quota: int, owner: str) -> None:
        """At optimizer ``step``: the curriculum's progress, and the mean window start of the
        pools ``counts`` of this step's pairs (first and latest step, for the effect)."""
        if self.total_steps is None:
            raise RuntimeError(f"{owner}: miner.schedule={self.schedule} needs the run length; "
                               "call check_schedule(epochs, steps) first")
        self.progress = min(max(step / max(self.total_steps - 1, 1), 0.0), 1.0)
        if not len(counts):
            return
        mean = float(np.mean([self.window(int(c), quota)[0] for c in counts]))
        self.starts = [self.starts[0] if self.starts else mean, mean]

    def window(self, count: int, quota: int) -> tuple[int, int]:
        """The curriculum's ``[start, stop)`` over a pool of ``count`` at the current step."""
        return curriculum_window(count, self.window_width(quota), self.progress, self.schedule)

    def positions(self, count: int, quota: int, pair: int, epoch: int) -> np.ndarray:
        """Pool positions of one pair's negatives from a pool of ``count`` survivors."""
        if self.schedule != "constant":
            lo, hi = self.window(count, quota)
            if self.strategy == "top" or hi - lo <= quota:
                return np.arange(lo, min(hi, lo + quota))
            rng = np.random.default_rng((self.seed, epoch, pair, 0))
            return np.sort(lo + rng.choice(hi - lo, size=quota, replace=False))
        if count > quota:
            rng = np.random.default_rng((self.seed, epoch, pair, 0))
            return np.sort(rng.choice(count, size=quota, replace=False))
        return np.arange(count)
