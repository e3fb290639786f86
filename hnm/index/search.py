"""Top-k inner-product search over L2-normalised embeddings with bounded memory.

:class:`DocIndex` is built once from the corpus embeddings and searched many times (evaluation,
static and ANCE re-mining); :func:`topk` is the one-shot form. Queries are searched in chunks,
so peak memory grows with the corpus embeddings, never with queries × corpus.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np
import torch

from hnm.errors import ConfigError, check_choice
from hnm.index.faiss_index import (
    GPU_MAX_K,
    build_faiss_index,
    faiss_available,
    faiss_has_gpu,
    log_once,
    search_params,
    to_gpu,
)
from hnm.index.torch_topk import chunked_topk

log = logging.getLogger(__name__)

Backend = Literal["auto", "faiss", "torch"]
IndexKind = Literal["flat", "ivf", "hnsw"]
BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch")
INDEXES: tuple[str, ...] = ("flat", "ivf", "hnsw")


def resolve_device(device: str | None) -> str:
    """``None`` -> ``cuda`` when available else ``cpu``; a CUDA request without CUDA -> cpu."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        log_once(f"search device {device!r} requested but CUDA is not available; using cpu",
                 logging.WARNING)
        return "cpu"
    return device


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(x), dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) array; got shape {arr.shape}")
    return arr


def _sort_rows(scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row by score descending, equal scores by index ascending; missing (-1) last."""
    scores = np.where(idx < 0, -np.inf, scores).astype(np.float32)
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), -scores), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)


class DocIndex:
    """Corpus embeddings, indexed once and searched by inner product many times.

    Args:
        docs: (n, d) float32 L2-normalised document embeddings (not copied when already
            float32 and C-contiguous; faiss keeps its own copy).
        backend: ``faiss`` (flat/ivf/hnsw), ``torch`` (exact, chunked) or ``auto``: faiss-gpu
            when installed and a GPU is used, else exact torch on the GPU, else faiss on CPU,
            else torch on CPU.
        index: ``flat`` (exact), ``ivf`` or ``hnsw`` (approximate, faiss only).
        device: ``cpu``, ``cuda`` / ``cuda:N``, or ``None`` (CUDA when available). faiss falls
            back to CPU (logged once) without a GPU build; HNSW always runs on CPU.
        query_chunk: queries per search call; bounds the per-call working memory.
        doc_chunk: documents per score block (torch backend).
        nlist, nprobe: IVF cells (default about ``4·sqrt(n)``) and cells visited per query.
        hnsw_m, ef_search, ef_construction: HNSW links per node and candidate-list sizes.
        seed: IVF k-means seed.

    ``search`` returns scores sorted descending; equal scores list the lower document index
    first (exact for ``flat``; ``ivf``/``hnsw`` sort what they found). Approximate indexes may
    find fewer than ``k`` documents: the missing slots hold index -1 and score -inf.
    """

    def __init__(self, docs: np.ndarray, backend: Backend = "auto", index: IndexKind = "flat",
                 device: str | None = None, query_chunk: int = 4096, doc_chunk: int = 8192,
                 nlist: int | None = None, nprobe: int = 32, hnsw_m: int = 32,
                 ef_search: int = 128, ef_construction: int = 80, seed: int = 0) -> None:
        check_choice("backend", backend, BACKENDS)
        check_choice("index", index, INDEXES)
        if query_chunk < 1 or doc_chunk < 1:
            raise ConfigError(f"query_chunk and doc_chunk must be >= 1; got {query_chunk}, {doc_chunk}")
        self.docs = _as_matrix(docs, "docs")
        if len(self.docs) == 0:
            raise ValueError("cannot index an empty corpus")
        self.kind, self.query_chunk, self.doc_chunk = index, query_chunk, doc_chunk
        self.ef_search = ef_search
        device = resolve_device(device)
        on_gpu = device.startswith("cuda")
        if backend == "auto":
            if not faiss_available() or (on_gpu and index == "flat" and not faiss_has_gpu()):
                backend = "torch"
            else:
                backend = "faiss"
        if backend == "torch" and index != "flat":
            raise ConfigError(f"index={index!r} needs faiss (backend=faiss or auto, with faiss-cpu "
                              "installed); the torch backend searches exactly (index=flat)")
        if backend == "faiss" and not faiss_available():
            raise ConfigError("backend=faiss needs the package faiss-cpu (or faiss-gpu-cu12); "
                              "or use backend=torch")
        if backend == "faiss" and on_gpu and (index == "hnsw" or not faiss_has_gpu()):
            why = "HNSW has no faiss GPU implementation" if index == "hnsw" else \
                "the installed faiss has no GPU support (pip install faiss-gpu-cu12)"
            log_once(f"faiss search runs on CPU: {why}")
            device, on_gpu = "cpu", False
        self.backend, self.device = backend, device
        start = time.perf_counter()
        self._docs_t: torch.Tensor | None = None
        self._index: Any = None
        if backend == "torch":
            self._docs_t = torch.from_numpy(self.docs).to(device)
        else:
            self._index = build_faiss_index(self.docs, index, nlist=nlist, nprobe=nprobe,
                                            hnsw_m=hnsw_m, ef_construction=ef_construction,
                                            seed=seed)
            if on_gpu:
                gpu = torch.device(device).index  # "cuda": this process's GPU (DDP rank)
                self._index = to_gpu(self._index, torch.cuda.current_device() if gpu is None
                                     else gpu)
        log.debug("DocIndex: %d x %d docs, backend=%s index=%s device=%s, built in %.2fs",
                  *self.docs.shape, backend, index, device, time.perf_counter() - start)

    @property
    def ntotal(self) -> int:
        return int(self.docs.shape[0])

    @property
    def dim(self) -> int:
        return int(self.docs.shape[1])

    def __len__(self) -> int:
        return self.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` documents of each query (``k`` clamped to the corpus size).

        Args:
            queries: (nq, d) float32 L2-normalised query embeddings.
            k: results per query, >= 1.

        Returns:
            ``(scores, indices)``: (nq, k) float32 sorted descending and (nq, k) int64 row
            indices into ``docs``.
        """
        q = _as_matrix(queries, "queries")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {q.shape[1]}, documents {self.dim}")
        if int(k) < 1:
            raise ConfigError(f"k must be >= 1; got {k}")
        k = min(int(k), self.ntotal)
        if len(q) == 0:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        if self._docs_t is not None:
            return chunked_topk(q, self._docs_t, k, self.query_chunk, self.doc_chunk)
        if self.device != "cpu" and k > GPU_MAX_K:
            log_once(f"k={k} exceeds the faiss GPU limit of {GPU_MAX_K}; exact search with torch")
            return chunked_topk(q, self._torch_docs(), k, self.query_chunk, self.doc_chunk)
        return self._faiss_search(q, k)

    def _torch_docs(self) -> torch.Tensor:
        return torch.from_numpy(self.docs)

    def _faiss_search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        # Exact search asks for one extra result: when the k-th and (k+1)-th scores are equal
        # faiss may have kept either, so those rows are redone with the tie-exact torch path.
        exact = self.kind == "flat"
        k_search = k + 1 if exact and k < self.ntotal else k
        params = search_params(self._index, k, self.ef_search)
        scores = np.empty((len(q), k_search), np.float32)
        idx = np.empty((len(q), k_search), np.int64)
        for qs in range(0, len(q), self.query_chunk):
            chunk = q[qs:qs + self.query_chunk]
            s, i = self._index.search(chunk, k_search, params=params)
            scores[qs:qs + len(chunk)], idx[qs:qs + len(chunk)] = s, i
        if k_search > k:
            tied = np.flatnonzero(scores[:, k - 1] == scores[:, k])
            scores, idx = scores[:, :k].copy(), idx[:, :k].copy()
            if len(tied):
                ts, ti = chunked_topk(q[tied], self._torch_docs(), k, self.query_chunk,
                                      self.doc_chunk)
                scores[tied], idx[tied] = ts, ti
        return _sort_rows(scores, idx)


def topk(queries: np.ndarray, docs: np.ndarray, k: int, backend: Backend = "auto",
         index: IndexKind = "flat", query_chunk: int = 4096, device: str | None = None,
         **index_kwargs: object) -> tuple[np.ndarray, np.ndarray]:
    """One-shot top-``k`` inner-product search; see :class:`DocIndex` for the arguments.

    Returns:
        ``(scores, indices)``, each (nq, min(k, n)), scores sorted descending.
    """
    doc_index = DocIndex(docs, backend=backend, index=index, device=device,
                         query_chunk=query_chunk, **index_kwargs)  # type: ignore[arg-type]
    return doc_index.search(queries, k)
