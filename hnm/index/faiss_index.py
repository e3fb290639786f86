"""Build faiss inner-product indexes (flat, IVF, HNSW) on CPU, and move them to a GPU.

Index types follow the faiss wiki ("Faiss indexes", "Guidelines to choose an index"):

- ``flat``: ``IndexFlatIP``, exact brute force (BLAS on CPU, blocked GEMM on GPU).
- ``ivf``: ``IndexIVFFlat`` with ``METRIC_INNER_PRODUCT``; k-means coarse quantizer of
  ``nlist`` cells (spherical for inner product), ``nprobe`` cells visited per query. faiss
  trains k-means on at most 256 points per centroid, sampled with the given seed.
- ``hnsw``: ``IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT`` (Malkov & Yashunin, 2018,
  "Efficient and robust approximate nearest neighbor search using Hierarchical Navigable
  Small World graphs"); ``M`` links per node, ``efSearch`` candidates per query. CPU only.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_LOGGED: set[str] = set()
_GPU_RESOURCES: Any = None
GPU_MAX_K = 2048  # faiss GPU k-selection limit


def log_once(message: str, level: int = logging.INFO) -> None:
    """Log ``message`` the first time it is seen in this process."""
    if message not in _LOGGED:
        _LOGGED.add(message)
        log.log(level, message)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def faiss_has_gpu() -> bool:
    """True when the installed faiss is a GPU build (``faiss-gpu``) and sees a device."""
    if not faiss_available():
        return False
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return False
    try:
        return int(faiss.get_num_gpus()) > 0
    except Exception:  # pragma: no cover - depends on the driver
        return False


def auto_nlist(n: int) -> int:
    """IVF cells: about ``4·sqrt(n)``, at most ``n / 39`` (faiss's minimum training points per
    centroid) and 65,536; at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39, 65536))


def build_faiss_index(docs: np.ndarray, kind: str = "flat", nlist: int | None = None,
                      nprobe: int = 32, hnsw_m: int = 32, ef_construction: int = 80,
                      seed: int = 0) -> Any:
    """A CPU faiss index over ``docs`` ((n, d) float32, C-contiguous), scored by inner product.

    ``nlist`` (IVF) defaults to :func:`auto_nlist` and is clamped to ``n``; ``nprobe`` is
    clamped to ``nlist``.
    """
    import faiss

    # Exact search computes scores block by block with BLAS; faiss's default corpus block (1,024)
    # leaves the GEMM short and wide. 8,192 roughly halves exact search time on CPU (measured
    # with scripts/bench_mining.py) for a temporary block of 4,096 x 8,192 floats (128 MB).
    if faiss.cvar.distance_compute_blas_database_bs < 8192:
        faiss.cvar.distance_compute_blas_database_bs = 8192
    n, d = docs.shape
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        cells = auto_nlist(n) if nlist is None else max(1, min(int(nlist), n))
        if nlist is not None and cells != nlist:
            log_once(f"index=ivf: nlist={nlist} exceeds the corpus size; using {cells}")
        quantizer = faiss.IndexFlatIP(d)
        # the faiss wrapper keeps a reference to the quantizer for the index's lifetime
        index = faiss.IndexIVFFlat(quantizer, d, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(docs)
        index.nprobe = max(1, min(int(nprobe), cells))
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(ef_construction)
    else:  # validated by the caller
        raise ValueError(kind)
    index.add(docs)
    return index


def search_params(index: Any, k: int, ef_search: int) -> Any:
    """Per-call parameters for HNSW (``efSearch >= k``, no mutation of the shared index)."""
    import faiss

    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=max(int(ef_search), k))  # type: ignore[attr-defined]
    return None


def to_gpu(index: Any, device_id: int) -> Any:
    """Copy a CPU flat/IVF index to GPU ``device_id`` (one ``StandardGpuResources`` per
    process), keeping the IVF ``nprobe``."""
    import faiss

    global _GPU_RESOURCES
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(_GPU_RESOURCES, device_id, index)
    nprobe = getattr(index, "nprobe", None)
    if nprobe is not None:
        faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", int(nprobe))
    return gpu
