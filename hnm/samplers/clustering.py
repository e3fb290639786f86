"""Clustering helpers for batch samplers: balanced recursive 2-means and spherical k-means.

Both work on L2-normalised embeddings (rows are normalised here if they are not) and are
deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def _normalise(emb: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(emb, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d (n, d) array of embeddings, got shape {x.shape}")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def balanced_kmeans(emb: np.ndarray, cluster_size: int, seed: int = 0,
                    n_iter: int = 10) -> list[np.ndarray]:
    """Split points into clusters of (nearly) equal size by recursive balanced 2-means.

    Every node is split in two by spherical 2-means with a balance constraint: points are
    sorted by the difference of their cosine similarities to the two centroids and the top
    share goes left, the rest right; centroids are re-estimated and the split repeated
    ``n_iter`` times or until it stops changing. A split starts from a random member and
    the member least similar to it. Like any top-down balanced split, it can cut through a
    tight group when the balance demands it. The tree has ``k = ceil(n / cluster_size)``
    leaves and each split hands each child a share of points proportional to its share of
    leaves, so every cluster has ``floor(n / k)`` or ``ceil(n / k)`` (<= ``cluster_size``)
    points; ``k`` need not be a power of two. All nodes of a tree level are split at once
    with array operations, so the cost is ``O(n_iter * n * d * log k)`` with no Python loop
    over nodes.

    This is the balanced hierarchical 2-means used by NGAME (Dahiya et al., WSDM 2023) to
    build its mini-batches, and earlier by tree-based extreme classifiers.

    Args:
        emb: ``(n, d)`` embeddings (cosine geometry; rows are normalised here).
        cluster_size: the largest cluster allowed (>= 1).
        seed: seeds the choice of the first starting centroid of every split.
        n_iter: at most this many assignment/update rounds per split.

    Returns:
        A list of ``k`` int64 arrays of row indices; every row appears in exactly one.
    """
    if cluster_size < 1:
        raise ValueError(f"cluster_size must be >= 1, got {cluster_size}")
    x = _normalise(emb)
    n = len(x)
    if n == 0:
        return []
    k_total = -(-n // cluster_size)
    if k_total == 1:
        return [np.arange(n, dtype=np.int64)]
    base = n // k_total  # every leaf gets `base` or `base + 1` points
    rng = np.random.default_rng(seed)

    leaves: list[np.ndarray] = []
    pts = np.arange(n, dtype=np.int64)  # active points, contiguous per node
    sizes = np.array([n], dtype=np.int64)
    ks = np.array([k_total], dtype=np.int64)
    while len(pts):
        n_nodes = len(sizes)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        k_left = ks // 2
        n_left = k_left * base + ((sizes - ks * base) * k_left) // ks
        node_of = np.repeat(np.arange(n_nodes), sizes)
        xs = x[pts]
        # Start each split from a random member and the member least similar to it (two
        # random members may fall in one dense region and leave the split stuck there).
        c_left = xs[starts + (rng.random(n_nodes) * sizes).astype(np.int64)]
        sim = np.einsum("nd,nd->n", xs, c_left[node_of])
        c_right = xs[np.lexsort((sim, node_of))[starts]]
        child_starts = np.stack([starts, starts + n_left], axis=1).ravel()
        left_of_prev = None
        for _ in range(max(1, n_iter)):
            diff = np.einsum("nd,nd->n", xs, (c_left - c_right)[node_of])
            order = np.lexsort((-diff, node_of))  # by node, then most-left-leaning first
            rank = np.arange(len(pts)) - starts[node_of]
            is_left = np.empty(len(pts), dtype=bool)
            is_left[order] = rank < n_left[node_of]
            sums = np.add.reduceat(xs[order], child_starts, axis=0)
            cents = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), _EPS)
            c_left, c_right = cents[0::2], cents[1::2]
            if left_of_prev is not None and np.array_equal(is_left, left_of_prev):
                break
            left_of_prev = is_left
        pts = pts[order]
        child_sizes = np.stack([n_left, sizes - n_left], axis=1).ravel()
        child_ks = np.stack([k_left, ks - k_left], axis=1).ravel()
        done = child_ks == 1
        if done.any():
            bounds = np.cumsum(child_sizes)[:-1]
            parts = np.split(pts, bounds)
            leaves.extend(parts[i] for i in np.flatnonzero(done))
            pts = pts[np.repeat(~done, child_sizes)]
        sizes, ks = child_sizes[~done], child_ks[~done]
    return leaves


def kmeans(emb: np.ndarray, n_clusters: int, seed: int = 0, n_iter: int = 20
           ) -> list[np.ndarray]:
    """Spherical k-means with faiss, started from a balanced split; clusters need not be balanced.

    Used to group queries by topic (TAS-Balanced, Hofstätter et al., SIGIR 2021, clusters
    training queries with k-means and draws each batch from one cluster).

    Args:
        emb: ``(n, d)`` embeddings (rows are normalised here).
        n_clusters: number of centroids (at most; fewer when ``n`` is small).
        seed: faiss's seed for centroid initialisation.
        n_iter: k-means iterations.

    Returns:
        The non-empty clusters as int64 arrays of row indices, each row in exactly one.
    """
    import faiss

    x = _normalise(emb)
    n, d = x.shape
    if n == 0:
        return []
    k = max(1, min(int(n_clusters), n))
    if k == 1:
        return [np.arange(n, dtype=np.int64)]
    # Start from the centroids of a balanced split rather than k random points, which can
    # put two centroids in one dense region and merge two others.
    init = np.stack([x[c].mean(axis=0) for c in balanced_kmeans(x, -(-n // k), seed=seed)])
    init /= np.maximum(np.linalg.norm(init, axis=1, keepdims=True), _EPS)
    km = faiss.Kmeans(d, len(init), niter=n_iter, seed=int(seed) % (2**31), spherical=True,
                      verbose=False, min_points_per_centroid=1)
    km.train(x, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
    _, assign = km.index.search(x, 1)
    labels = assign[:, 0].astype(np.int64)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return list(np.split(order, bounds))
