"""Balanced recursive 2-means and faiss k-means: sizes, coverage, planted groups, speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hnm.samplers.clustering import balanced_kmeans, kmeans


def planted(n_groups: int, per_group: int, dim: int = 32, noise: float = 0.02,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points around ``n_groups`` random unit centres, rows shuffled; returns (emb, group)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    group = rng.permutation(np.repeat(np.arange(n_groups), per_group))
    emb = centres[group] + noise * rng.standard_normal((len(group), dim))
    return emb.astype(np.float32), group


def check_partition(clusters: list[np.ndarray], n: int) -> None:
    flat = np.concatenate(clusters) if clusters else np.zeros(0, dtype=np.int64)
    assert len(flat) == n
    assert np.array_equal(np.sort(flat), np.arange(n)), "every row exactly once"


@pytest.mark.parametrize("n,size", [(3000, 8), (1000, 7), (97, 8), (64, 8), (10, 3),
                                    (5, 8), (8, 8), (9, 8), (50, 1), (1, 4)])
def test_balanced_sizes_and_coverage(n: int, size: int) -> None:
    emb = np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32)
    clusters = balanced_kmeans(emb, size, seed=0)
    check_partition(clusters, n)
    sizes = np.array([len(c) for c in clusters])
    assert len(clusters) == -(-n // size)
    assert sizes.max() <= size
    assert sizes.max() - sizes.min() <= 1, "sizes nearly equal"


def test_empty_input() -> None:
    assert balanced_kmeans(np.zeros((0, 4), dtype=np.float32), 8) == []
    with pytest.raises(ValueError):
        balanced_kmeans(np.zeros((4, 4), dtype=np.float32), 0)


def test_deterministic_given_seed() -> None:
    emb = np.random.default_rng(1).standard_normal((500, 16)).astype(np.float32)
    a, b = balanced_kmeans(emb, 8, seed=5), balanced_kmeans(emb, 8, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = balanced_kmeans(emb, 8, seed=6)
    assert {tuple(sorted(x)) for x in a} != {tuple(sorted(x)) for x in c}


def purity(clusters: list[np.ndarray], group: np.ndarray) -> float:
    """Share of points that belong to the majority group of their cluster."""
    return sum(np.bincount(group[c]).max() for c in clusters) / len(group)


@pytest.mark.parametrize("n_groups", [16, 12, 5, 64])
def test_recovers_planted_groups(n_groups: int) -> None:
    # A hierarchical balanced split can cut through a group when the groups have no
    # hierarchy (random centres); most clusters must still be exactly one group.
    emb, group = planted(n_groups, per_group=8, seed=n_groups)
    clusters = balanced_kmeans(emb, 8, seed=0)
    truth = {frozenset(np.flatnonzero(group == g).tolist()) for g in range(n_groups)}
    exact = sum(frozenset(c.tolist()) in truth for c in clusters)
    assert purity(clusters, group) >= 0.9
    assert exact >= 0.75 * n_groups


def test_recovers_planted_groups_split_in_halves() -> None:
    # Groups of 16 with clusters of 8: nearly every cluster lies inside one group.
    emb, group = planted(8, per_group=16, seed=3)
    clusters = balanced_kmeans(emb, 8, seed=0)
    assert len(clusters) == 16
    assert purity(clusters, group) >= 0.9


def test_planted_recovery_on_average_over_seeds() -> None:
    scores = []
    for seed in range(10):
        emb, group = planted(32, per_group=8, dim=16, seed=seed)
        scores.append(purity(balanced_kmeans(emb, 8, seed=seed), group))
    assert np.mean(scores) >= 0.97


def test_clusters_are_tighter_than_random_on_unstructured_data() -> None:
    emb = np.random.default_rng(0).standard_normal((1024, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    def intra(clusters: list[np.ndarray]) -> float:
        return float(np.mean([(emb[c] @ emb[c].T)[np.triu_indices(len(c), 1)].mean()
                              for c in clusters]))

    random_parts = np.split(np.random.default_rng(1).permutation(1024), 128)
    assert intra(balanced_kmeans(emb, 8, seed=0)) > intra(random_parts) + 0.4


def test_fast_enough() -> None:
    emb = np.random.default_rng(0).standard_normal((3000, 384)).astype(np.float32)
    start = time.perf_counter()
    balanced_kmeans(emb, 8, seed=0)
    assert time.perf_counter() - start < 3.0


def test_kmeans_covers_and_recovers_planted_groups() -> None:
    emb, group = planted(6, per_group=40, dim=16, seed=2)
    clusters = kmeans(emb, 6, seed=0)
    check_partition(clusters, len(group))
    assert len(clusters) <= 6
    assert purity(clusters, group) >= 0.95
    again = kmeans(emb, 6, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(clusters, again))


def test_kmeans_caps_clusters_at_n() -> None:
    emb = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    check_partition(kmeans(emb, 50, seed=0), 5)
    assert [c.tolist() for c in kmeans(emb, 1)] == [[0, 1, 2, 3, 4]]
