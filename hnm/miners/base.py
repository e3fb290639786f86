"""The shared mining pipeline: index -> search -> rank window and filters -> per-query pools ->
per-step negatives.

A concrete miner only says how to rank corpus documents for the unique training queries (its
search, :meth:`MinerBase.candidates`, dense kNN by default); the other stages are small objects
and pure functions that :class:`MinerBase` composes:

- :mod:`hnm.miners.corpus`: the index of corpus rows, unique queries and known positives;
- :mod:`hnm.miners.search`: the dense search, and what one pass found (:class:`Mined`);
- :mod:`hnm.miners.filters`: the rank window and score filters that turn candidates into
  per-query pools, and the search depth they need;
- :mod:`hnm.miners.pool_sampler`: which pool rows a pair gets in an epoch (``top``/``random``,
  the difficulty curriculum) and the padding of a short pool;
- :mod:`hnm.miners.counters`: what the miner changed in the run (:meth:`MinerBase.effect`);
- :mod:`hnm.miners.telemetry`: the figures of a pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError, check_choice, check_range
from hnm.miners.corpus import index_pairs, lowest_positive_score, positive_mask, positive_slots
from hnm.miners.counters import MinerCounters
from hnm.miners.filters import (
    FilterSettings,
    Pool,
    apply_filters,
    check_reach,
    dropped_by_score,
    search_depth,
)
from hnm.miners.pool_sampler import SAMPLING, SCHEDULES, PoolSampler, random_rows
from hnm.miners.search import Candidates, Mined, dense_search
from hnm.miners.telemetry import mining_telemetry, print_telemetry
from hnm.state import PartState
from hnm.types import EmbedFn, Phase

log = logging.getLogger(__name__)

SamplingStrategy = Literal["top", "random"]
__all__ = ["SAMPLING", "SCHEDULES", "Candidates", "Mined", "MinerBase"]


class MinerBase(PartState):
    """Base class of the explicit-negative miners (satisfies :class:`hnm.types.Miner`): the
    shared pipeline, index -> search -> rank window and filters -> pools -> per-step
    negatives, made of the small objects and pure functions of the module docstring. A miner
    overrides its search (:meth:`candidates`) and, where it needs to, adds a filter
    (:meth:`filter`, calling the shared one first), keeps rows out of the padding
    (:meth:`never_pad`) or mixes in random negatives by design (:meth:`mined_quota`).

    Mining runs once per *unique* training query. For each query the candidates are, in rank
    order: every known positive (``pairs.positives[qid]`` and the pairs' own positives) is
    removed; the rank window ``[range_min, range_max)`` of the remaining list is kept; then
    ``absolute_margin``, ``relative_margin``, ``max_score`` and ``min_score`` drop candidates
    (NV-Retriever's TopK-MarginPos / TopK-PercPos, Moreira et al. 2024). What survives is the
    query's *pool*. Knob names follow sentence-transformers' ``util.mine_hard_negatives``; it
    departs from it in one place: the rank window is cut before the score filters (there,
    ``range_min`` skips the first survivors of the filters), so ``range_min=10`` means "ranks
    10 and below of the non-positive list" whatever the margins drop.

    At every training step :meth:`negatives` returns exactly ``num_negatives`` ids per pair:

    - ``sampling_strategy=top``: the pool is the ``num_negatives`` best survivors, the same in
      every epoch (the hardest negatives);
    - ``sampling_strategy=random``: the pool is every survivor of the window, and each epoch
      draws ``num_negatives`` of them without replacement, seeded by ``(seed, epoch, pair)``,
      so repeated epochs see different negatives (listed in rank order).

    A pair whose pool is shorter is padded with random corpus documents that are not known
    positives of its query (seeded by ``(seed, epoch, pair)``); the number of short queries is
    reported by the telemetry. A configuration under which no query keeps any candidate (every
    negative would be padding) is refused before training (:class:`~hnm.errors.ConfigError`),
    and so is a ``range_min`` that skips every non-positive document of every query.

    What the miner changed in the run (:meth:`effect`, written to ``metrics.json`` as
    ``strategy/miner/<figure>``; all zero means it changed nothing): ``negatives_attached``
    (mined negatives handed to training steps), ``negatives_padded`` (random documents that
    filled a short pool), ``candidates_dropped`` (candidates the score filters removed, over
    every mining pass; positives and the rank window are not counted) and, with
    ``teacher_scores``, ``pairs_with_teacher_scores``.

    Args:
        num_negatives: negatives per training pair (k).
        range_min: skip the ``range_min`` best non-positive candidates (likely false negatives).
        range_max: consider candidates up to this rank; ``None`` = ``range_min + 10·k``.
        sampling_strategy: ``top`` or ``random`` (see above).
        absolute_margin: drop a candidate scoring above ``pos_score - absolute_margin``.
        relative_margin: drop a candidate scoring above ``pos_score - |pos_score|·relative_margin``
            (equal to ``pos_score·(1 - relative_margin)`` for the usual positive scores).
        max_score, min_score: drop candidates scoring above / below these.
        teacher_scores: return the miner's scores ``(B, 1+k)`` (positive first; NaN for padded
            documents) for distillation losses such as MarginMSE.
        index: ``flat`` (exact), ``ivf`` or ``hnsw`` (approximate), see :class:`~hnm.index.DocIndex`.
        backend, device, query_chunk: passed to :class:`~hnm.index.DocIndex`.
        seed: the seed of all sampling (with the epoch and the pair index).
        verbose: print the telemetry table after mining.

        schedule: a difficulty curriculum over training (see below): ``constant`` (default,
            no curriculum), ``easy_to_hard`` or ``hard_to_easy``.
        schedule_width: pool ranks in the curriculum's sampling window; ``None`` =
            ``num_negatives`` with ``sampling_strategy=top``, twice that with ``random``.
        data, pairs: the run's data and training pairs (``hnm train`` gives them when it
            builds the miner; :meth:`mine` receives them too), so that a resumed run, which
            restores the miner's state instead of mining, has them.

    ``pos_score`` is the lowest score among the query's known positives (the safe choice when a
    query has several, as in sentence-transformers).

    **Curriculum** (``schedule``): the negatives of a step come from a window of
    ``schedule_width`` consecutive ranks of the query's pool (its survivors, hardest first)
    that slides over training. At training progress ``f = step / (steps - 1)`` (optimizer steps
    of the run, known from :meth:`check_schedule`) the window of a pool of ``c`` survivors
    starts at rank ``round((1 - f) · (c - w))`` for ``easy_to_hard`` (the easiest ranks first,
    the hardest at the last step) and ``round(f · (c - w))`` for ``hard_to_easy``; ``top``
    takes the window's first ``num_negatives``, ``random`` draws them from it (seeded by
    ``(seed, epoch, pair)`` as above). Under a curriculum the pool of ``top`` holds every
    survivor of ``[range_min, range_max)``, not only the best ones. ``constant`` is the
    behaviour without a curriculum, exactly. A curriculum whose window covers every pool (no
    room to move) or a run of one step is refused with a :class:`~hnm.errors.ConfigError`.
    :meth:`effect` then adds ``schedule_start_first`` and ``schedule_start_last``: the mean
    window start (pool rank) at the first and at the latest step. This makes testable the
    claim of Tyss et al. (ECtHR-PCR, 2024) that difficulty-based sampling of negatives does not
    help prior case retrieval; the linear pacing is the simplest of the curriculum-learning
    schedules (Bengio et al., ICML 2009) and a departure from both: they pace by a difficulty
    score of training examples, here difficulty is the miner's rank of a negative.
    """

    phases: tuple[Phase, ...] = (Phase.ATTACH_NEGATIVES,)
    uses_encoder: bool = True  # False: `hnm mine` need not load the encoder
    keep_index: bool = False  # True: keep ``self.index`` (the corpus DocIndex) after mining

    def __init__(self, num_negatives: int = 5, range_min: int = 0, range_max: int | None = 50,
                 sampling_strategy: SamplingStrategy = "random",
                 absolute_margin: float | None = None, relative_margin: float | None = None,
                 max_score: float | None = None, min_score: float | None = None,
                 teacher_scores: bool = False, index: str = "flat", backend: str = "auto",
                 device: str | None = None, query_chunk: int = 4096, seed: int = 0,
                 verbose: bool = True, schedule: str = "constant",
                 schedule_width: int | None = None, data: RetrievalData | None = None,
                 pairs: TrainPairs | None = None) -> None:
        check_choice("miner.sampling_strategy", sampling_strategy, SAMPLING)
        check_choice("miner.schedule", schedule, SCHEDULES)
        if schedule_width is not None and int(schedule_width) < int(num_negatives):
            raise ConfigError(f"miner.schedule_width={schedule_width} is not valid; expected "
                              f">= miner.num_negatives ({num_negatives}) or null")
        check_range("miner.num_negatives", num_negatives, 1)
        check_range("miner.range_min", range_min, 0)
        if range_max is not None and int(range_max) <= int(range_min):
            raise ConfigError(f"miner.range_max ({range_max}) must be greater than "
                              f"miner.range_min ({range_min})")
        check_range("miner.query_chunk", query_chunk, 1)
        self.num_negatives = int(num_negatives)
        self.range_min = int(range_min)
        self.range_max = int(range_max) if range_max is not None else None
        self.sampling_strategy = sampling_strategy
        self.absolute_margin, self.relative_margin = absolute_margin, relative_margin
        self.max_score, self.min_score = max_score, min_score
        self.teacher_scores = bool(teacher_scores)
        self.index_kind, self.backend, self.device = index, backend, device
        self.query_chunk, self.seed, self.verbose = int(query_chunk), int(seed), verbose
        self.schedule = schedule
        self.schedule_width = None if schedule_width is None else int(schedule_width)
        self.sampler = PoolSampler(sampling_strategy, schedule, self.schedule_width, self.seed)
        self.counters = MinerCounters()
        self.index: Any = None
        self.pool: Pool | None = None
        self.last_stats: dict[str, float] = {}
        if data is not None and pairs is not None:  # the run's own: never in a checkpoint
            self.data, self.pairs = data, pairs

    # -- the index of the training data -----------------------------------------------------
    def setup(self, data: RetrievalData, pairs: TrainPairs) -> None:
        """Index the corpus ids, the unique queries and every known positive
        (:func:`~hnm.miners.corpus.index_pairs`); refuse a ``range_min`` that skips every
        non-positive document of every query."""
        self.data, self.pairs = data, pairs
        ix = index_pairs(data, pairs)
        self.doc_ids, self.doc_row, self.qids = ix.doc_ids, ix.doc_row, ix.qids
        self.pair_qrow, self.pos_q, self.pos_d = ix.pair_qrow, ix.pos_q, ix.pos_d
        self._pos_slot, self.max_positives = ix.pos_slot, ix.max_positives
        if self.mined_quota() > 0:
            check_reach(self.range_min, ix.fewest_known, len(self.doc_ids))

    def positive_mask(self, idx: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, k) bool: ``idx[i, j]`` is a known positive of query row ``rows[i]``."""
        return positive_mask(self.pos_q, self.pos_d, len(self.doc_ids), idx, rows)

    def positive_slots(self, q: int) -> slice:
        """Where query row ``q``'s known positives sit in ``pos_q`` / ``pos_d``."""
        return positive_slots(self.pos_q, q)

    def query_pos_score(self, pos_scores: np.ndarray | None = None) -> np.ndarray:
        """(nq,) lowest known-positive score per query (NaN without a scored positive)."""
        flat = self.pos_scores if pos_scores is None else pos_scores
        return lowest_positive_score(self.pos_q, len(self.qids), flat)

    # -- the Miner protocol -----------------------------------------------------------------
    def mine(self, data: RetrievalData, pairs: TrainPairs, embed_queries: EmbedFn,
             embed_docs: EmbedFn) -> dict[str, float]:
        """Mine every unique training query once; returns the telemetry (logged as mine/*).

        Raises :class:`~hnm.errors.ConfigError` when no query kept any candidate."""
        self.setup(data, pairs)
        stats = self.run(embed_queries, embed_docs, "mine")
        assert self.pool is not None
        if self.mined_quota() > 0 and int(self.pool.count.sum()) == 0:
            counts = ", ".join(f"{k}={int(v)}" for k, v in stats.items()
                               if (k.startswith("removed_") or k == "candidates") and v)
            raise ConfigError(
                f"miner ({type(self).__name__}): none of the {len(self.qids)} training queries "
                f"kept a candidate negative ({counts or 'no candidate found'}), so every "
                "negative would be a random corpus document, as if the miner were not "
                "configured. Loosen miner.range_min, miner.range_max or the score filters "
                "(miner.absolute_margin, miner.relative_margin, miner.max_score, "
                "miner.min_score, and a guide's thresholds)")
        self.sampler.check_window(self.pool.count, self.mined_quota())
        return stats

    def check_schedule(self, epochs: int, steps: int) -> None:
        """The curriculum's clock (:meth:`PoolSampler.check_schedule`)."""
        self.sampler.check_schedule(steps)

    def needs_refresh(self, step: int) -> bool:
        return False

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        """Re-mine with the given (current) encoder."""
        return self.run(embed_queries, embed_docs, "refresh")

    def run(self, embed_queries: EmbedFn, embed_docs: EmbedFn, stage: str) -> dict[str, float]:
        """Search, filter, keep the pools and report; shared by :meth:`mine` and
        :meth:`refresh`."""
        self.adopt(self.search(embed_queries, embed_docs))
        if self.verbose:
            print_telemetry(self.last_stats, f"{type(self).__name__} {stage}")
        return self.last_stats

    def search(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> Mined:
        """One search-and-filter pass with these embedders; changes no pool in use, so the
        synchronous path (:meth:`run`) and a background refresh (ANCE) share it."""
        t0 = time.perf_counter()
        cands = self.candidates(embed_queries, embed_docs, self.search_k)
        t1 = time.perf_counter()
        pool, removed = self.filter(cands)
        timings = dict(cands.timings)
        timings["filter_s"] = time.perf_counter() - t1
        timings["total_s"] = time.perf_counter() - t0
        stats = mining_telemetry(pool, self.query_pos_score(cands.pos_scores), removed,
                                 self.num_negatives, self.mined_quota(), timings)
        return Mined(pool, cands.pos_scores, removed, stats)

    def adopt(self, mined: Mined) -> None:
        """Put a pass's pools in use (the negatives of every later step come from them)."""
        self.pool, self.pos_scores = mined.pool, mined.pos_scores
        self.last_stats = dict(mined.stats)
        self.counters["candidates_dropped"] += dropped_by_score(mined.removed)

    # -- the search: a miner's own ----------------------------------------------------------
    def candidates(self, embed_queries: EmbedFn, embed_docs: EmbedFn, k: int) -> Candidates:
        """Top-``k`` corpus documents of each unique query; dense kNN by default."""
        t0 = time.perf_counter()
        q_emb = embed_queries([self.data.queries[q] for q in self.qids])
        d_emb = embed_docs([self.data.doc_text(d) for d in self.doc_ids])
        cands = self.dense_candidates(q_emb, d_emb, k)
        cands.timings["encode_s"] = time.perf_counter() - t0 - cands.timings["search_s"]
        return cands

    def dense_candidates(self, q_emb: np.ndarray, d_emb: np.ndarray, k: int) -> Candidates:
        """:func:`~hnm.miners.search.dense_search` with this miner's index knobs."""
        cands, index = dense_search(q_emb, d_emb, k, self.pos_q, self.pos_d, self.index_kind,
                                    self.backend, self.device, self.query_chunk, self.seed)
        self.index = index if self.keep_index else None
        return cands

    # -- the rank window and filters --------------------------------------------------------
    @property
    def filter_settings(self) -> FilterSettings:
        """The rank window and score filters of this miner (``limit``: the pool of ``top``)."""
        return FilterSettings(self.range_min, self.range_max, self.absolute_margin,
                              self.relative_margin, self.max_score, self.min_score,
                              self.mined_quota() if self.sampling_strategy == "top"
                              and self.schedule == "constant" else None)

    @property
    def search_k(self) -> int:
        """Candidates to retrieve per query (:func:`~hnm.miners.filters.search_depth`)."""
        return search_depth(self.filter_settings, self.num_negatives, self.max_positives,
                            len(self.doc_ids))

    def filter(self, cands: Candidates) -> tuple[Pool, dict[str, int]]:
        """Apply positive exclusion, the rank window and the score filters to candidates."""
        return apply_filters(cands.idx, cands.scores, self.positive_mask(cands.idx),
                             self.query_pos_score(cands.pos_scores), self.filter_settings)

    # -- per-step negatives -----------------------------------------------------------------
    def mined_quota(self) -> int:
        """How many of each pair's negatives come from the pool (the rest are random)."""
        return self.num_negatives

    def negatives(self, pair_idx: Sequence[int], epoch: int, step: int
                  ) -> tuple[list[list[str]], np.ndarray | None]:
        """``num_negatives`` document ids per pair, and optional teacher scores (B, 1+k)."""
        if self.pool is None:
            raise RuntimeError(f"{type(self).__name__}.negatives() called before mine()")
        rows = self.pair_qrow[np.asarray(list(pair_idx), dtype=np.int64)]
        if self.schedule != "constant":
            self.sampler.step(step, self.pool.count[rows], self.mined_quota(),
                              type(self).__name__)
        ids, teacher = [], []
        for p in pair_idx:
            neg_rows, scores = self.pair_negatives(int(p), epoch)
            ids.append([self.doc_ids[r] for r in neg_rows])
            teacher.append(scores)
        self.counters.served(self.pool.count[rows], self.mined_quota(), self.num_negatives)
        if not self.teacher_scores:
            return ids, None
        self.counters["pairs_with_teacher_scores"] += len(ids)
        pos = np.array([self.pair_pos_score(int(p)) for p in pair_idx], dtype=np.float32)
        return ids, np.concatenate([pos[:, None], np.asarray(teacher, np.float32)], axis=1)

    def pair_negatives(self, pair: int, epoch: int) -> tuple[list[int], list[float]]:
        """Corpus rows and scores of one pair's negatives in ``epoch`` (deterministic): its
        pool positions (:meth:`PoolSampler.positions`), then padding."""
        assert self.pool is not None
        q = int(self.pair_qrow[pair])
        take = self.sampler.positions(int(self.pool.count[q]), self.mined_quota(), pair, epoch)
        rows = [int(r) for r in self.pool.idx[q, take]]
        scores = [float(s) for s in self.pool.scores[q, take]]
        missing = self.num_negatives - len(rows)
        if missing > 0:
            rows += self.random_docs(pair, epoch, missing, set(rows))
            scores += [float("nan")] * missing
        return rows, scores

    def random_docs(self, pair: int, epoch: int, n: int, exclude: set[int]) -> list[int]:
        """``n`` distinct random corpus rows that are neither known positives of the pair's
        query, nor in ``exclude``, nor in :meth:`never_pad`; seeded by ``(seed, epoch, pair)``
        (:func:`~hnm.miners.pool_sampler.random_rows`)."""
        q = int(self.pair_qrow[pair])
        positives = {int(d) for d in self.pos_d[self.positive_slots(q)]}
        banned = set(exclude) | positives | self.never_pad(q)
        return random_rows((self.seed, epoch, pair, 1), n, len(self.doc_ids), banned,
                           positives, self.qids[q])

    def never_pad(self, q: int) -> set[int]:
        """Corpus rows that padding must not draw for query row ``q`` (none by default; the
        denoiser's likely false negatives)."""
        return set()

    def pair_pos_score(self, pair: int) -> float:
        """The miner's score of the pair's own positive (NaN if unknown)."""
        slot = self._pos_slot.get((int(self.pair_qrow[pair]),
                                   self.doc_row.get(self.pairs.pos_ids[pair], -1)))
        return float(self.pos_scores[slot]) if slot is not None else float("nan")

    # -- what it changed, what it holds -----------------------------------------------------
    def effect(self) -> dict[str, float]:
        """Cumulative counts of what this miner changed in the run (see the class docstring)."""
        keys = ["negatives_attached", "negatives_padded", "candidates_dropped"]
        if self.teacher_scores:
            keys.append("pairs_with_teacher_scores")
        out = self.counters.figures(keys)
        if self.schedule != "constant" and self.sampler.starts:
            out["schedule_start_first"], out["schedule_start_last"] = self.sampler.starts
        return out

    def frozen_models(self) -> list[Any]:
        """Models this miner holds that must not train (none by default)."""
        return []

    # -- export -----------------------------------------------------------------------------
    def records(self) -> Iterator[dict[str, Any]]:
        """One record per unique query: its positives and its pool, with scores (``hnm mine``)."""
        assert self.pool is not None
        for q, qid in enumerate(self.qids):
            sl = self.positive_slots(q)
            slots = range(sl.start, sl.stop)
            n = int(self.pool.count[q])
            yield {
                "qid": qid,
                "pos_ids": [self.doc_ids[int(self.pos_d[s])] for s in slots],
                "pos_scores": [_num(self.pos_scores[s]) for s in slots],
                "neg_ids": [self.doc_ids[int(r)] for r in self.pool.idx[q, :n]],
                "neg_scores": [_num(s) for s in self.pool.scores[q, :n]],
            }

    def settings(self) -> dict[str, Any]:
        """The miner's knobs, for the negatives file's metadata."""
        skip = {"index", "pool", "last_stats", "data", "pairs", "doc_ids", "doc_row", "qids",
                "pair_qrow", "pos_q", "pos_d", "pos_scores"}
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in skip
                and isinstance(v, (int, float, str, bool, type(None)))}


def _num(x: Any) -> float | None:
    v = float(x)
    return None if not np.isfinite(v) else round(v, 6)
