"""Exact inner-product top-k in PyTorch over (query chunk × corpus chunk) blocks.

The reference implementation and the fallback when faiss is missing (or when faiss has no GPU
build but a CUDA device is available). Peak extra memory is one ``query_chunk × doc_chunk``
score block plus the running ``query_chunk × k`` results, whatever the corpus size.
"""

from __future__ import annotations

import numpy as np
import torch


def _sort_desc_stable(scores: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order each row by score descending, equal scores by index ascending."""
    order = idx.argsort(dim=1)
    scores, idx = scores.gather(1, order), idx.gather(1, order)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return scores.gather(1, order), idx.gather(1, order)


def block_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of each row of a score block, ties broken by lower column index.

    ``torch.topk`` does not say which of several equal values it keeps; rows whose k-th value
    is tied with a value outside the top-k are redone with a stable full sort (rare on real
    embeddings, exact on duplicated documents).

    Args:
        scores: (m, n) scores.
        k: how many to keep, ``1 <= k <= n``.

    Returns:
        (m, k) scores sorted descending and their (m, k) int64 column indices.
    """
    vals, idx = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    vals, idx = _sort_desc_stable(vals, idx)
    tied = (scores >= vals[:, -1:]).sum(dim=1) > k
    if bool(tied.any()):
        rows = tied.nonzero().squeeze(1)
        sv, si = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        vals[rows], idx[rows] = sv[:, :k], si[:, :k]
    return vals, idx


def chunked_topk(queries: np.ndarray, docs: torch.Tensor, k: int, query_chunk: int = 4096,
                 doc_chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` documents per query by inner product, never forming queries × corpus.

    Each corpus block's top-k is merged into the running top-k with a stable sort; running
    entries always have lower indices than the new block's, so ties keep the lower index.

    Args:
        queries: (nq, d) float32.
        docs: (n, d) float32 tensor on the device to compute on.
        k: results per query, ``1 <= k <= n``.
        query_chunk: queries per block.
        doc_chunk: documents per block.

    Returns:
        (nq, k) float32 scores sorted descending and (nq, k) int64 document indices.
    """
    nq, n = queries.shape[0], docs.shape[0]
    out_s = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    with torch.inference_mode():
        for qs in range(0, nq, query_chunk):
            q = torch.from_numpy(queries[qs:qs + query_chunk]).to(docs.device)
            best_s: torch.Tensor | None = None
            best_i: torch.Tensor | None = None
            for ds in range(0, n, doc_chunk):
                block = q @ docs[ds:ds + doc_chunk].T
                cs, ci = block_topk(block, min(k, block.shape[1]))
                ci = ci + ds
                if best_s is None or best_i is None:
                    best_s, best_i = cs, ci
                    continue
                cat_s, cat_i = torch.cat([best_s, cs], dim=1), torch.cat([best_i, ci], dim=1)
                order = torch.sort(cat_s, dim=1, descending=True, stable=True).indices[:, :k]
                best_s, best_i = cat_s.gather(1, order), cat_i.gather(1, order)
            assert best_s is not None and best_i is not None
            out_s[qs:qs + len(q)] = best_s.float().cpu().numpy()
            out_i[qs:qs + len(q)] = best_i.cpu().numpy()
    return out_s, out_i
