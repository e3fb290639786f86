"""Top-k inner-product search: faiss (flat / IVF / HNSW, CPU or GPU) and chunked exact torch."""

from hnm.index.search import BACKENDS, INDEXES, Backend, DocIndex, IndexKind, resolve_device, topk
from hnm.index.torch_topk import block_topk, chunked_topk

__all__ = [
    "BACKENDS", "INDEXES", "Backend", "DocIndex", "IndexKind", "block_topk", "chunked_topk",
    "resolve_device", "topk",
]
