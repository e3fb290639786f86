"""NGAME: batches made of clusters of similar training pairs, so in-batch negatives are hard."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError, check_choice, check_range
from hnm.samplers.clustering import balanced_kmeans
from hnm.samplers.random import check_batch_size, epoch_rng, num_batches, to_batches
from hnm.state import PartState
from hnm.types import EmbedFn, Phase

EMBED_CHOICES = ("query", "positive", "both")
SCHEDULE_CHOICES = ("constant", "double")


def _embed_unique(fn: EmbedFn, texts: Sequence[str]) -> np.ndarray:
    """Embed each distinct text once (a query with several positives is one text)."""
    index: dict[str, int] = {}
    inv = np.fromiter((index.setdefault(t, len(index)) for t in texts), np.int64, len(texts))
    return np.asarray(fn(list(index)), dtype=np.float32)[inv]


class NGAMESampler(PartState):
    """Negative-mining-aware mini-batching: each batch is a few clusters of similar pairs.

    Every training pair is embedded with the current encoder, the embeddings are split into
    small balanced clusters of ``cluster_size`` by recursive balanced 2-means
    (:func:`hnm.samplers.clustering.balanced_kmeans`), and each epoch the clusters are
    shuffled, laid end to end and cut into batches. When ``cluster_size`` divides
    ``batch_size`` a batch is ``batch_size // cluster_size`` whole clusters, so the other
    pairs' positives in the batch are near neighbours: hard in-batch negatives at no extra
    encoding cost. Clusters are recomputed with the current encoder every ``refresh_every``
    epochs (by the refresh callback, via ``needs_refresh``/``refresh``); until the first
    refresh, batches are random. Every pair is seen once per epoch and the number of batches
    is the same as a random sampler's. All shuffling depends only on ``(seed, epoch)``.

    Paper: Dahiya et al., "NGAME: Negative Mining-aware Mini-batching for Extreme
    Classification", WSDM 2023 (arXiv:2207.04452).

    Where this departs from the paper:

    - NGAME trains extreme classifiers (data points tagged with labels; a Siamese encoder,
      then per-label classifiers). Here a bi-encoder is trained on (query, positive document)
      pairs with in-batch negatives; a query with several positives is one point per pair.
    - NGAME clusters data-point (query) embeddings; that is the default ``embed="query"``.
      ``"positive"`` (document embeddings) and ``"both"`` (normalised mean of the two) are
      additions.
    - The authors' code reuses embeddings stored during the previous epoch's forward passes;
      here a no-grad pass with the current encoder runs at each refresh (``embed_seconds``).
    - The authors' code starts with random batches for some warm-up epochs, re-clusters every
      few (5) epochs and doubles the cluster size at a list of curriculum epochs. The defaults
      here suit short fine-tuning of a pretrained encoder: clusters from epoch 0, refreshed
      every epoch, constant size. ``warmup_epochs``, ``refresh_every`` and
      ``cluster_size_schedule="double"`` (every ``grow_every`` epochs, up to
      ``max_cluster_size``) give the paper's schedule.
    - The tree has ``ceil(n / cluster_size)`` leaves (any number, not a power of two), the
      order within a cluster is shuffled, and ``random_fraction`` mixes in random batches.

    Args:
        pairs: the training pairs.
        batch_size: pairs per batch.
        seed: base seed; epoch shuffles use ``(seed, epoch)``, clustering ``(seed, refresh epoch)``.
        drop_last: drop the last batch when it is shorter than ``batch_size``.
        cluster_size: pairs per cluster (the starting size with a growth schedule).
        embed: what represents a pair when clustering: ``query``, ``positive`` or ``both``.
        refresh_every: re-cluster with the current encoder every this many epochs.
        cluster_size_schedule: ``constant``, or ``double`` the size every ``grow_every`` epochs.
        grow_every: epochs between doublings (with ``cluster_size_schedule="double"``).
        max_cluster_size: cap of the schedule; None means ``batch_size`` (also the hard cap).
        random_fraction: share of each epoch's batches that are re-drawn at random (0 to 1).
        warmup_epochs: epochs of random batches before the first clustering.
        n_iter: 2-means rounds per split.

    Recommended with: an in-batch loss (``loss=infonce``) and masking of false negatives and
    duplicate positives, since cluster-mates often share relevant documents. Larger batches
    (more clusters per batch) keep some easy negatives in every batch.
    """

    phases = (Phase.EPOCH_START, Phase.COMPOSE_BATCH)

    def __init__(self, pairs: TrainPairs, batch_size: int, seed: int = 0,
                 drop_last: bool = False, cluster_size: int = 8,
                 embed: Literal["query", "positive", "both"] = "query",
                 refresh_every: int = 1,
                 cluster_size_schedule: Literal["constant", "double"] = "constant",
                 grow_every: int = 1, max_cluster_size: int | None = None,
                 random_fraction: float = 0.0, warmup_epochs: int = 0, n_iter: int = 10) -> None:
        check_batch_size(batch_size)
        check_choice("sampler.embed", embed, EMBED_CHOICES)
        check_choice("sampler.cluster_size_schedule", cluster_size_schedule, SCHEDULE_CHOICES)
        self.max_cluster_size = int(batch_size if max_cluster_size is None
                                    else min(max_cluster_size, batch_size))
        check_range("sampler.refresh_every", refresh_every, 1)
        check_range("sampler.grow_every", grow_every, 1)
        check_range("sampler.warmup_epochs", warmup_epochs, 0)
        check_range("sampler.n_iter", n_iter, 1)
        check_range("sampler.cluster_size", cluster_size, 1)
        check_range("sampler.random_fraction", random_fraction, 0.0, 1.0)
        if not 1 <= cluster_size <= self.max_cluster_size:
            raise ConfigError(
                f"sampler.cluster_size={cluster_size} must be between 1 and "
                f"{self.max_cluster_size} (batch_size={batch_size}, max_cluster_size="
                f"{max_cluster_size})"
            )
        if not 0.0 <= random_fraction <= 1.0:
            raise ConfigError(f"sampler.random_fraction={random_fraction!r} must be in [0, 1]")
        self.pairs = pairs
        self.n = len(pairs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.cluster_size = int(cluster_size)
        self.embed = embed
        self.refresh_every = int(refresh_every)
        self.cluster_size_schedule = cluster_size_schedule
        self.grow_every = int(grow_every)
        self.random_fraction = float(random_fraction)
        self.warmup_epochs = int(warmup_epochs)
        self.n_iter = int(n_iter)
        self.epoch = 0
        self.clusters: list[np.ndarray] | None = None  # pair indices per cluster
        self._labels: np.ndarray | None = None  # cluster id per pair
        self._refreshed_at = -1
        self._clustered_size = 0
        self._served = {"batches_from_clusters": 0, "batches_random": 0, "refreshes": 0}
        self._random_batches: set[int] = set()

    # ---- schedule -------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def cluster_size_at(self, epoch: int) -> int:
        """Target cluster size for an epoch under the growth schedule."""
        if self.cluster_size_schedule == "constant":
            return self.cluster_size
        doublings = max(0, epoch - self.warmup_epochs) // self.grow_every
        return min(self.cluster_size << min(doublings, 62), self.max_cluster_size)

    def needs_refresh(self, epoch: int) -> bool:
        if epoch < self.warmup_epochs:
            return False
        if self._labels is None or self.cluster_size_at(epoch) != self._clustered_size:
            return True
        return epoch - self._refreshed_at >= self.refresh_every

    # ---- clustering -----------------------------------------------------------------------
    def _embeddings(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> np.ndarray:
        if self.embed == "positive":
            return _embed_unique(embed_docs, self.pairs.positive_texts())
        q = _embed_unique(embed_queries, self.pairs.query_texts())
        if self.embed == "query":
            return q
        both = q + _embed_unique(embed_docs, self.pairs.positive_texts())
        return both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-12)

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]:
        """Re-cluster the pairs with the current encoder; returns timing and cluster telemetry."""
        start = time.perf_counter()
        size = self.cluster_size_at(self.epoch)
        if size == 1:  # singletons: random batches, nothing to embed
            emb = np.zeros((self.n, 1), dtype=np.float32)  # similarity telemetry reads 0
            clusters = [np.array([i], dtype=np.int64) for i in range(self.n)]
            embedded = done = time.perf_counter()
        else:
            emb = self._embeddings(embed_queries, embed_docs)
            embedded = time.perf_counter()
            cluster_seed = int(np.random.SeedSequence([self.seed % 2**32, self.epoch, 1])
                               .generate_state(1)[0])
            clusters = balanced_kmeans(emb, size, seed=cluster_seed, n_iter=self.n_iter)
            done = time.perf_counter()
        labels = np.zeros(self.n, dtype=np.int64)
        if clusters:
            labels[np.concatenate(clusters)] = np.repeat(np.arange(len(clusters)),
                                                         [len(c) for c in clusters])
        self.clusters, self._labels = clusters, labels
        self._refreshed_at, self._clustered_size = self.epoch, size
        self._served["refreshes"] += 1
        intra, rand = _similarity_stats(emb, clusters)
        return {
            "embed_seconds": embedded - start,
            "cluster_seconds": done - embedded,
            "num_clusters": float(len(clusters)),
            "cluster_size": float(size),
            "mean_cluster_size": self.n / max(1, len(clusters)),
            "intra_cluster_sim": intra,
            "random_pair_sim": rand,
        }

    # ---- batches --------------------------------------------------------------------------
    def batches(self) -> list[list[int]]:
        """This epoch's batches (what ``__iter__`` yields)."""
        rng = epoch_rng(self.seed, self.epoch)
        if self._labels is None:
            return to_batches(rng.permutation(self.n), self.batch_size, self.drop_last)
        cluster_rank = rng.permutation(len(self.clusters or ()))
        order = np.lexsort((rng.random(self.n), cluster_rank[self._labels]))
        batches = to_batches(order, self.batch_size, self.drop_last)
        n_random = int(round(self.random_fraction * len(batches)))
        self._random_batches = set()
        if n_random:
            chosen = np.sort(rng.choice(len(batches), size=n_random, replace=False))
            self._random_batches = set(chosen.tolist())
            pool = rng.permutation(np.concatenate([batches[b] for b in chosen])).tolist()
            for b in chosen:
                size = len(batches[b])
                batches[b], pool = pool[:size], pool[size:]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        clustered = self._labels is not None and self._clustered_size > 1
        for b, batch in enumerate(batches):
            from_clusters = clustered and b not in self._random_batches
            self._served["batches_from_clusters" if from_clusters else "batches_random"] += 1
            yield batch

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last)

    # ---- what it changed ------------------------------------------------------------------
    def effect(self) -> dict[str, float]:
        """Batches composed from clusters (vs random ones) and re-clusterings, so far."""
        return {"batches_from_clusters": float(self._served["batches_from_clusters"]),
                "refreshes": float(self._served["refreshes"])}

    def check_schedule(self, epochs: int, steps: int) -> None:
        if self.warmup_epochs >= epochs:
            raise ConfigError(
                f"sampler.warmup_epochs={self.warmup_epochs} but the run trains {epochs} "
                "epoch(s): NGAME would never cluster and this run would train random batches. "
                "Lower sampler.warmup_epochs or raise trainer.max_epochs")


def _similarity_stats(emb: np.ndarray, clusters: list[np.ndarray]) -> tuple[float, float]:
    """Mean cosine over pairs of cluster-mates, and over all pairs (a random batch's level)."""
    x = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    n = len(x)
    if n < 2:
        return 0.0, 0.0
    self_sims = float(np.einsum("nd,nd->", x, x, dtype=np.float64))  # n, bar zero rows
    total = x.sum(axis=0, dtype=np.float64)
    rand = (float(total @ total) - self_sims) / (n * (n - 1))
    sizes = np.array([len(c) for c in clusters], dtype=np.float64)
    if not clusters or sizes.max() < 2:
        return 0.0, rand
    order = np.concatenate(clusters)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    sums = np.add.reduceat(x[order].astype(np.float64), starts, axis=0)
    intra = (float((sums * sums).sum()) - self_sims) / float((sizes * (sizes - 1)).sum())
    return intra, rand
