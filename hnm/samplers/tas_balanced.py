"""TAS-Balanced: batches of one topic cluster, negatives balanced over teacher-margin bins."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError, check_choice, check_range
from hnm.samplers.clustering import kmeans
from hnm.samplers.random import check_batch_size, epoch_rng, num_batches, to_batches
from hnm.state import PartState
from hnm.types import EmbedFn, Phase

log = logging.getLogger(__name__)

BIN_RANGE_CHOICES = ("query", "global")


def margin_bins(margins: np.ndarray, valid: np.ndarray, n_bins: int,
                per_row: bool = True) -> np.ndarray:
    """Equal-width bin (0..n_bins-1) of every valid margin; -1 where not valid.

    The bins span each row's margin range (``per_row``) or the range over all rows.
    """
    m = np.where(valid, margins, np.nan)
    if per_row:
        lo = np.nanmin(np.where(valid.any(1, keepdims=True), m, 0.0), axis=1, keepdims=True)
        hi = np.nanmax(np.where(valid.any(1, keepdims=True), m, 0.0), axis=1, keepdims=True)
    else:
        lo = np.full((len(m), 1), np.nanmin(m) if valid.any() else 0.0)
        hi = np.full((len(m), 1), np.nanmax(m) if valid.any() else 0.0)
    width = np.where(hi > lo, (hi - lo) / n_bins, 1.0)
    bins = np.clip(np.floor((np.nan_to_num(m) - lo) / width), 0, n_bins - 1).astype(np.int64)
    return np.where(valid, bins, -1)


def balanced_choice(bins: np.ndarray, n_bins: int, k: int, rng: np.random.Generator
                    ) -> np.ndarray:
    """Pick ``k`` distinct columns per row: a non-empty bin uniformly, then a member uniformly.

    Args:
        bins: (P, C) bin of each candidate, -1 for no candidate.
        n_bins: number of bins.
        k: picks per row.
        rng: random generator.

    Returns:
        (P, k) column indices; -1 where a row ran out of candidates.
    """
    p, c = bins.shape
    avail = bins >= 0
    out = np.full((p, k), -1, dtype=np.int64)
    rows = np.arange(p)
    for r in range(k):
        flat = (rows[:, None] * n_bins + np.maximum(bins, 0))[avail]
        occupied = np.bincount(flat, minlength=p * n_bins).reshape(p, n_bins) > 0
        u = np.where(occupied, rng.random((p, n_bins)), -1.0)
        chosen_bin = u.argmax(1)
        v = np.where(avail & (bins == chosen_bin[:, None]), rng.random((p, c)), -1.0)
        col = v.argmax(1)
        ok = occupied.any(1)
        out[ok, r] = col[ok]
        avail[rows[ok], col[ok]] = False
    return out


class TASBalancedSampler(PartState):
    """Topic-aware batches from query clusters, and margin-balanced explicit negatives.

    **Topic-aware sampling.** At the first refresh (before training, with the starting
    encoder), the distinct training queries are embedded and clustered with spherical k-means
    (:func:`hnm.samplers.clustering.kmeans`). Batches are drawn from single clusters, so
    in-batch negatives share the query's topic. An epoch trains every pair exactly once, in as
    many batches as a random sampler's, all full but the last: each cluster's pairs (shuffled)
    are cut into full batches of one cluster; what is left of every cluster (fewer than
    ``batch_size`` pairs each) is laid out cluster after cluster, in a random order, and cut
    into batches too, so a few batches (at most ``n_clusters``, about half that on average) mix
    the tails of several clusters. The full batches come in a random order, the short one
    last. Why mixed tails rather than one short batch per cluster: short batches would have
    fewer in-batch negatives and the epoch more steps than the random baseline's, and the
    number of batches would change with every re-clustering while Lightning reads it once.

    **Balanced margin sampling.** With ``num_negatives`` > 0, each query's top
    ``n_candidates`` corpus documents (known positives excluded) are retrieved by the
    teacher at the same refresh, and the teacher margin ``s(q, d+) - s(q, d-)`` of every
    (pair, candidate) is put into one of ``n_bins`` equal-width bins (over the pair's own
    margin range, or the range over all pairs). Each epoch, each pair's negatives are drawn by
    picking a non-empty bin uniformly and then a candidate uniformly inside it, so rare margins
    (very hard and very easy negatives) are seen as often as the common middle. The teacher
    is the starting encoder or, when given, the ``guide`` model. The negatives reach the
    module through :meth:`as_miner` (``hnm train`` uses it when no ``+miner`` is configured)
    together with the teacher scores ``(B, 1+k)`` (positive first), which is what
    ``loss=margin_mse`` and ``loss=kl`` distil.

    Args:
        pairs: the training pairs (and, through ``pairs.data``, the corpus).
        batch_size: pairs per batch.
        seed: base seed; batches and negatives depend only on ``(seed, epoch)``.
        drop_last: skip batches shorter than ``batch_size``.
        n_clusters: k-means clusters; None: about four batches of queries per cluster.
        num_negatives: explicit negatives per pair (0: topic-aware batches only).
        n_candidates: teacher's top documents per query that negatives are drawn from.
        n_bins: margin bins (TAS-B: 10).
        bin_range: ``query`` (bins over each pair's margin range) or ``global``.
        guide: optional frozen teacher (a ``SentenceTransformer``, e.g. a config node) that
            scores candidates instead of the starting encoder.
        guide_batch_size: embedding batch size of the guide.
        refresh_every: re-cluster and re-mine every N epochs with the current encoder; 0 (the
            paper) computes both once before training.
        kmeans_iter: k-means iterations.

    Paper: Hofstätter, Lin, Yang, Lin, Hanbury, "Efficiently Teaching an Effective Dense
    Retriever with Balanced Topic Aware Sampling" (SIGIR 2021, arXiv:2104.06967).

    Departures: TAS-B clusters MS MARCO queries with a baseline dense retriever into 2000
    clusters and samples a random cluster per batch (with replacement, no epochs); here an
    epoch covers every pair once, and the clusters' tails form a few mixed batches. The paper's
    candidate pairs and margins come from a BERT-CAT teacher ensemble over BM25 negatives; here
    the candidates are the teacher bi-encoder's own top documents and the margins its cosine
    scores (give a stronger ``guide`` for a real teacher). TAS-B also distils in-batch
    negatives from a ColBERT teacher; use ``loss=margin_mse loss.infonce_weight=…`` for an
    in-batch term.

    Recommended with: ``loss=margin_mse`` (TAS-B's pairwise loss), a ``guide`` stronger than
    the student, and ``+negatives=false_negative_mask`` (cluster-mates often share positives).
    """

    phases = (Phase.EPOCH_START, Phase.COMPOSE_BATCH)
    not_state = ("guide",)  # models it holds, not its state (hnm.state)

    def __init__(self, pairs: TrainPairs, batch_size: int, seed: int = 0,
                 drop_last: bool = False, n_clusters: int | None = None,
                 num_negatives: int = 1, n_candidates: int = 100, n_bins: int = 10,
                 bin_range: Literal["query", "global"] = "query", guide: Any = None,
                 guide_batch_size: int = 64, refresh_every: int = 0,
                 kmeans_iter: int = 20) -> None:
        check_batch_size(batch_size)
        check_choice("sampler.bin_range", bin_range, BIN_RANGE_CHOICES)
        check_range("sampler.num_negatives", num_negatives, 0)
        check_range("sampler.n_candidates", n_candidates, 1)
        check_range("sampler.n_bins", n_bins, 1)
        check_range("sampler.refresh_every", refresh_every, 0)
        check_range("sampler.kmeans_iter", kmeans_iter, 1)
        check_range("sampler.guide_batch_size", guide_batch_size, 1)
        if n_clusters is not None:
            check_range("sampler.n_clusters", n_clusters, 1)
        if num_negatives > n_candidates:
            raise ConfigError(f"sampler.num_negatives={num_negatives} exceeds "
                              f"sampler.n_candidates={n_candidates}")
        self.pairs = pairs
        self.n = len(pairs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.num_negatives = int(num_negatives)
        self.n_candidates = int(n_candidates)
        self.n_bins = int(n_bins)
        self.bin_range = bin_range
        self.guide = guide
        self.guide_batch_size = int(guide_batch_size)
        self.refresh_every = int(refresh_every)
        self.kmeans_iter = int(kmeans_iter)
        self.qids = list(dict.fromkeys(pairs.qids))
        index = {q: i for i, q in enumerate(self.qids)}
        self.query_of = np.array([index[q] for q in pairs.qids], dtype=np.int64)
        self.n_clusters = int(n_clusters) if n_clusters is not None else \
            max(1, round(len(self.qids) / (4 * self.batch_size)))
        self._auto_clusters = n_clusters is None  # follows batch_size (global under DDP)
        self.epoch = 0
        self.clusters: list[np.ndarray] | None = None  # pair indices per cluster
        self._refreshed_at = -1
        self.doc_ids: list[str] = []
        self.cand_rows: np.ndarray | None = None     # (Q, C) corpus rows, -1 = none
        self.cand_scores: np.ndarray | None = None   # (Q, C) teacher scores
        self.pos_scores: np.ndarray | None = None    # (P,) teacher score of each pair's positive
        self.bins: np.ndarray | None = None          # (P, C) margin bin, -1 = none
        self._choice: tuple[int, np.ndarray] | None = None
        self._served = {"batches_from_one_cluster": 0, "negatives_attached": 0}

    # ---- protocol --------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def needs_refresh(self, epoch: int) -> bool:
        if self.clusters is None:
            return True
        return self.refresh_every > 0 and epoch - self._refreshed_at >= self.refresh_every

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        """Cluster the queries and (with ``num_negatives``) score candidate negatives."""
        start = time.perf_counter()
        if self._auto_clusters:
            self.n_clusters = max(1, round(len(self.qids) / (4 * self.batch_size)))
        q_emb = embed_queries([self.pairs.data.queries[q] for q in self.qids])
        cluster_seed = int(np.random.SeedSequence([self.seed % 2**32, self.epoch, 7])
                           .generate_state(1)[0])
        q_clusters = kmeans(q_emb, self.n_clusters, seed=cluster_seed, n_iter=self.kmeans_iter)
        label = np.zeros(len(self.qids), dtype=np.int64)
        for c, members in enumerate(q_clusters):
            label[members] = c
        pair_label = label[self.query_of]
        self.clusters = [np.flatnonzero(pair_label == c) for c in range(len(q_clusters))]
        self._refreshed_at = self.epoch
        if len(self.clusters) == 1:
            log.warning("tas_balanced: the queries form a single cluster (n_clusters=%d for %d "
                        "queries), so its batches are random; set sampler.n_clusters >= 2",
                        self.n_clusters, len(self.qids))
        sizes = np.array([len(c) for c in self.clusters])
        stats = {"num_clusters": float(len(self.clusters)),
                 "mean_cluster_size": float(sizes.mean()), "min_cluster_size": float(sizes.min()),
                 "max_cluster_size": float(sizes.max()),
                 "cluster_seconds": time.perf_counter() - start}
        if self.num_negatives > 0:
            stats.update(self.refresh_negatives(embed_queries, embed_docs, q_emb))
        return stats

    # ---- negatives ---------------------------------------------------------------------------
    @property
    def has_negatives(self) -> bool:
        return self.bins is not None

    def refresh_negatives(self, embed_queries: EmbedFn, embed_docs: EmbedFn,
                          q_emb: np.ndarray | None = None) -> dict[str, float]:
        """Retrieve each query's candidates with the teacher and bin their margins."""
        from hnm.index import topk

        start = time.perf_counter()
        if self.guide is not None:
            from hnm.cache import frozen_embed_fn

            embed_queries = embed_docs = frozen_embed_fn(self.guide, self.guide_batch_size,
                                                         progress=False)
            q_emb = None
        data = self.pairs.data
        if q_emb is None:
            q_emb = embed_queries([data.queries[q] for q in self.qids])
        self.doc_ids = list(data.corpus)
        d_emb = embed_docs([data.doc_text(d) for d in self.doc_ids])
        row = {d: i for i, d in enumerate(self.doc_ids)}
        n_docs = len(self.doc_ids)
        positives = [sorted(row[d] for d in self.pairs.positives.get(q, ()) if d in row)
                     for q in self.qids]
        k = min(n_docs, self.n_candidates + max((len(p) for p in positives), default=0))
        scores, idx = topk(q_emb, d_emb, k)
        pos_keys = np.array([qi * n_docs + r for qi, rs in enumerate(positives) for r in rs],
                            dtype=np.int64)
        keep = (idx >= 0) & ~np.isin(np.arange(len(idx))[:, None] * n_docs + idx, pos_keys)
        keep &= np.cumsum(keep, axis=1) <= self.n_candidates
        order = np.argsort(~keep, axis=1, kind="stable")[:, :self.n_candidates]
        kept = np.take_along_axis(keep, order, 1)
        self.cand_rows = np.where(kept, np.take_along_axis(idx, order, 1), -1)
        self.cand_scores = np.where(kept, np.take_along_axis(scores, order, 1), np.nan
                                    ).astype(np.float32)
        pos_rows = np.array([row[d] for d in self.pairs.pos_ids], dtype=np.int64)
        self.pos_scores = np.einsum("nd,nd->n", q_emb[self.query_of], d_emb[pos_rows]
                                    ).astype(np.float32)
        margins = self.pos_scores[:, None] - self.cand_scores[self.query_of]
        valid = self.cand_rows[self.query_of] >= 0
        self.bins = margin_bins(margins, valid, self.n_bins, per_row=self.bin_range == "query")
        self._choice = None
        occupancy = np.bincount(self.bins[valid], minlength=self.n_bins) / max(1, valid.sum())
        return {"mine_seconds": time.perf_counter() - start,
                "candidates_per_query": float(kept.sum(1).mean()),
                "mean_margin": float(np.nanmean(np.where(valid, margins, np.nan)))
                if valid.any() else 0.0,
                "largest_bin_share": float(occupancy.max())}

    def chosen_columns(self, epoch: int) -> np.ndarray:
        """(P, k) candidate columns picked for every pair in an epoch (-1: none left)."""
        if self.bins is None:
            raise RuntimeError("tas_balanced: negatives are chosen at the sampler's first "
                               "refresh, which has not run yet")
        if self._choice is None or self._choice[0] != epoch:
            rng = epoch_rng(self.seed, epoch, stream=3)
            self._choice = (epoch, balanced_choice(self.bins, self.n_bins,
                                                   self.num_negatives, rng))
        return self._choice[1]

    def negatives_for(self, pair_idx: Sequence[int], epoch: int | None = None
                      ) -> tuple[list[list[str]], np.ndarray]:
        """Negative doc ids ``(B, k)`` and teacher scores ``(B, 1+k)`` (positive first).

        A pair left without candidates (a corpus smaller than ``n_candidates``) is padded with
        random non-positive documents whose teacher score is NaN (unknown).
        """
        epoch = self.epoch if epoch is None else int(epoch)
        cols = self.chosen_columns(epoch)
        assert self.cand_rows is not None and self.cand_scores is not None
        assert self.pos_scores is not None
        idx = np.asarray(pair_idx, dtype=np.int64)
        q = self.query_of[idx]
        c = cols[idx]
        rows = np.where(c >= 0, np.take_along_axis(self.cand_rows[q], np.maximum(c, 0), 1), -1)
        neg_scores = np.where(c >= 0, np.take_along_axis(self.cand_scores[q], np.maximum(c, 0),
                                                         1), np.nan)
        ids: list[list[str]] = []
        for b, p in enumerate(idx.tolist()):
            out = [self.doc_ids[r] for r in rows[b].tolist() if r >= 0]
            if len(out) < self.num_negatives:
                out += self._pad(p, epoch, self.num_negatives - len(out), out)
            ids.append(out)
        teacher = np.concatenate([self.pos_scores[idx][:, None], neg_scores], axis=1)
        return ids, teacher.astype(np.float32)

    def _pad(self, pair: int, epoch: int, count: int, taken: list[str]) -> list[str]:
        rng = np.random.default_rng([self.seed % 2**32, epoch, 4, pair])
        banned = self.pairs.positives.get(self.pairs.qids[pair], set()) | set(taken)
        pool = [d for d in self.doc_ids if d not in banned] or self.doc_ids
        return [pool[i] for i in rng.choice(len(pool), size=count, replace=len(pool) < count)]

    def as_miner(self) -> SamplerNegatives | None:
        """A :class:`~hnm.types.Miner` that hands the module this sampler's negatives."""
        return SamplerNegatives(self) if self.num_negatives > 0 else None

    # ---- batches -------------------------------------------------------------------------------
    def batches(self) -> list[list[int]]:
        """This epoch's batches (what ``__iter__`` yields); random before the first refresh.

        Every pair once: each cluster's pairs (shuffled) are cut into full batches; the
        remainders of all clusters, laid out cluster after cluster (in a random order), are
        cut into batches as well, so these few batches mix the tails of several clusters. The
        full batches come in a random order, the short one (if any) last.
        """
        rng = epoch_rng(self.seed, self.epoch)
        if self.clusters is None:
            return to_batches(rng.permutation(self.n), self.batch_size, self.drop_last)
        bs = self.batch_size
        pure: list[list[int]] = []
        tails: list[np.ndarray] = []
        for c in rng.permutation(len(self.clusters)).tolist():
            members = rng.permutation(self.clusters[c])
            full = len(members) // bs * bs
            pure += to_batches(members[:full], bs, drop_last=True)
            tails.append(members[full:])
        mixed = to_batches(np.concatenate(tails) if tails else np.zeros(0, np.int64), bs,
                           self.drop_last)
        short = [b for b in mixed if len(b) < bs]
        rest = pure + [b for b in mixed if len(b) == bs]
        return [rest[i] for i in rng.permutation(len(rest)).tolist()] + short

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        # one cluster is a random batch: nothing topic-aware to count
        clustered = self.clusters is not None and len(self.clusters) > 1
        cluster_of = self._cluster_of() if clustered else None
        for batch in batches:
            if cluster_of is not None and len({int(cluster_of[i]) for i in batch}) == 1:
                self._served["batches_from_one_cluster"] += 1
            yield batch

    def _cluster_of(self) -> np.ndarray:
        label = np.full(self.n, -1, dtype=np.int64)
        for c, members in enumerate(self.clusters or ()):
            label[members] = c
        return label

    def __len__(self) -> int:
        # the random sampler's count: full batches of one cluster, full mixed batches of the
        # clusters' tails, and at most one short batch
        return num_batches(self.n, self.batch_size, self.drop_last)

    # ---- what it changed ---------------------------------------------------------------------
    def effect(self) -> dict[str, float]:
        """Batches served from a single query cluster (none while there is only one cluster:
        those batches are random), and explicit negatives handed to the module through
        :meth:`as_miner` (with their teacher scores), so far in this run."""
        return {key: float(v) for key, v in self._served.items()}


class SamplerNegatives(PartState):
    """The :class:`~hnm.types.Miner` view of a sampler that chooses explicit negatives.

    ``negatives`` returns the sampler's negatives and teacher scores for the epoch. The
    sampler normally computes them in its own refresh (before the first batch); when it has
    not (under DDP the data module trains with a rank-sharded copy of the sampler), the first
    ``needs_refresh`` asks for them and ``refresh`` computes them here.
    """

    phases = (Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES)
    not_state = ("sampler",)  # the sampler's state is its own

    def __init__(self, sampler: TASBalancedSampler) -> None:
        self.sampler = sampler
        self.num_negatives = sampler.num_negatives

    def mine(self, data: Any, pairs: TrainPairs, embed_queries: EmbedFn,
             embed_docs: EmbedFn) -> dict[str, float]:
        return self.refresh(embed_queries, embed_docs)

    def negatives(self, pair_idx: Sequence[int], epoch: int, step: int
                  ) -> tuple[list[list[str]], np.ndarray | None]:
        ids, teacher = self.sampler.negatives_for(pair_idx, epoch)
        self.sampler._served["negatives_attached"] += sum(len(row) for row in ids)
        return ids, teacher

    def effect(self) -> dict[str, float]:
        """Explicit negatives handed to the module so far (``+miner`` view of the sampler)."""
        return {"negatives_attached": float(self.sampler._served["negatives_attached"])}

    def needs_refresh(self, step: int) -> bool:
        return not self.sampler.has_negatives

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        return self.sampler.refresh_negatives(embed_queries, embed_docs)
