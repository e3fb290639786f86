"""Chunked exact top-k against a brute-force argsort; approximate indexes against exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnm.errors import ConfigError
from hnm.index import DocIndex, block_topk, chunked_topk, topk


def brute_topk(q: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q.astype(np.float64) @ d.astype(np.float64).T
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, idx, 1), idx


def normed(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_exact_topk_matches_argsort(backend: str, k: int) -> None:
    rng = np.random.default_rng(k)
    docs, queries = normed(rng, 937, 16), normed(rng, 61, 16)
    index = DocIndex(docs, backend=backend, query_chunk=8, doc_chunk=100)
    scores, idx = index.search(queries, k)
    ref_s, ref_i = brute_topk(queries, docs, k)
    assert scores.shape == idx.shape == (61, k)
    assert scores.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_ties_prefer_lower_index(backend: str) -> None:
    # Small integer vectors: every score is exact, so ties are real and frequent.
    rng = np.random.default_rng(3)
    docs = rng.integers(-1, 2, size=(300, 4)).astype(np.float32)
    docs = np.concatenate([docs, docs[:50]])  # planted duplicate documents
    queries = rng.integers(-1, 2, size=(40, 4)).astype(np.float32)
    for k in (1, 5, 33):
        _, idx = DocIndex(docs, backend=backend, query_chunk=7, doc_chunk=64).search(queries, k)
        np.testing.assert_array_equal(idx, brute_topk(queries, docs, k)[1])


def test_block_topk_tie_rows() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0]])
    vals, idx = block_topk(scores, 2)
    assert idx.tolist() == [[1, 2], [0, 1]]
    assert vals.tolist() == [[3.0, 3.0], [5.0, 4.0]]


def test_chunked_topk_k_equals_corpus() -> None:
    rng = np.random.default_rng(0)
    docs, q = normed(rng, 10, 4), normed(rng, 3, 4)
    s, i = chunked_topk(q, torch.from_numpy(docs), 10, query_chunk=2, doc_chunk=3)
    np.testing.assert_array_equal(i, brute_topk(q, docs, 10)[1])


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_k_clamped_and_empty_queries(backend: str) -> None:
    rng = np.random.default_rng(1)
    docs = normed(rng, 5, 8)
    s, i = topk(normed(rng, 3, 8), docs, 100, backend=backend)
    assert s.shape == i.shape == (3, 5)
    assert sorted(i[0].tolist()) == [0, 1, 2, 3, 4]
    s, i = topk(np.zeros((0, 8), np.float32), docs, 3, backend=backend)
    assert s.shape == i.shape == (0, 3)


def clustered(rng: np.random.Generator, n: int, d: int, centers: int) -> np.ndarray:
    c = normed(rng, centers, d)
    x = c[rng.integers(0, centers, n)] + 0.08 * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind,kwargs", [("ivf", {"nprobe": 8}), ("hnsw", {"hnsw_m": 16})])
def test_approximate_recall(kind: str, kwargs: dict) -> None:
    rng = np.random.default_rng(7)
    docs = clustered(rng, 4000, 32, 40)
    queries = clustered(rng, 200, 32, 40)
    _, exact = topk(queries, docs, 10, backend="faiss", index="flat")
    scores, approx = topk(queries, docs, 10, backend="faiss", index=kind, seed=0, **kwargs)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.9, recall
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_ivf_nlist_clamped_to_corpus() -> None:
    rng = np.random.default_rng(2)
    docs = normed(rng, 50, 8)
    index = DocIndex(docs, backend="faiss", index="ivf", nlist=10_000, nprobe=10_000)
    s, i = index.search(docs[:4], 3)
    assert i[:, 0].tolist() == [0, 1, 2, 3]


def test_invalid_choices_list_valid_values() -> None:
    docs = np.eye(3, dtype=np.float32)
    with pytest.raises(ConfigError, match="flat, ivf, hnsw"):
        DocIndex(docs, index="annoy")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="auto, faiss, torch"):
        DocIndex(docs, backend="scann")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs faiss"):
        DocIndex(docs, backend="torch", index="hnsw")
    with pytest.raises(ConfigError, match="k must be"):
        DocIndex(docs).search(docs, 0)
    with pytest.raises(ValueError, match="dimension"):
        DocIndex(docs).search(np.ones((1, 4), np.float32), 1)


def test_cuda_request_falls_back_to_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    index = DocIndex(np.eye(4, dtype=np.float32), device="cuda")
    assert index.device == "cpu"
    assert index.search(np.eye(4, dtype=np.float32), 1)[1][:, 0].tolist() == [0, 1, 2, 3]
