"""Cross-device negatives: gather every rank's batch so each query sees the global batch."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from hnm.dist import world
from hnm.types import ScoreContext


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``factor`` on the way back."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, factor: float) -> Tensor:  # noqa: D102
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad * ctx.factor, None


def all_gather_rows(x: Tensor, sizes: list[int]) -> list[Tensor]:
    """Every rank's ``x`` (rank ``r`` holds ``sizes[r]`` rows), as a list indexed by rank.

    Rows are padded to the largest size for the collective and trimmed after. Other ranks'
    tensors carry no gradient; this rank's entry is ``x`` itself with its gradient scaled by the
    world size (see :func:`gather_context` for why that gives the single-process gradient).
    """
    size, rank = world()
    if size == 1:
        return [x]
    rows = max(sizes)
    buf = x.detach()
    if buf.shape[0] < rows:
        buf = torch.cat([buf, buf.new_zeros((rows - buf.shape[0], *buf.shape[1:]))])
    out = [torch.empty_like(buf) for _ in range(size)]
    dist.all_gather(out, buf.contiguous())
    parts = [o[:n] for o, n in zip(out, sizes)]
    parts[rank] = _ScaleGrad.apply(x, float(size)) if x.requires_grad else x
    return parts


def global_candidate_order(sizes: list[int], k: int) -> np.ndarray:
    """Permutation from the rank-major concatenation of local candidates to the global layout.

    Rank ``r`` holds ``sizes[r]`` positives followed by ``sizes[r]*k`` negatives. Concatenating
    the ranks gives ``[pos_0; neg_0; pos_1; neg_1; …]``; the ScoreContext contract needs
    ``[pos_0; pos_1; …; neg_0; neg_1; …]`` so that query ``i`` of the global batch has its
    positive at column ``i`` and its own negatives at ``B + i*k … B + i*k + k - 1``.
    Returns ``perm`` with ``global = rank_major[perm]``.
    """
    starts = np.concatenate(([0], np.cumsum([s * (1 + k) for s in sizes])[:-1])).astype(np.int64)
    pos = [np.arange(s, dtype=np.int64) + st for s, st in zip(sizes, starts)]
    neg = [np.arange(s * k, dtype=np.int64) + st + s for s, st in zip(sizes, starts)]
    return np.concatenate(pos + neg)


def _place(blocks: list[Tensor | None], sizes: list[int], n_cols: list[int],
           inverse: np.ndarray, fill: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Put each rank's local (B_r, N_r) matrix on the global (B, N) grid."""
    total_b, total_n = sum(sizes), sum(n_cols)
    out = torch.full((total_b, total_n), fill, dtype=dtype, device=device)
    row = col = 0
    for block, b, n in zip(blocks, sizes, n_cols):
        if block is not None and b:
            cols = torch.as_tensor(inverse[col:col + n], device=device)
            out[row:row + b][:, cols] = block.to(device=device, dtype=dtype)
        row, col = row + b, col + n
    return out


def gather_context(ctx: ScoreContext) -> ScoreContext:
    """The global-batch context: every rank's queries, positives and negatives, aligned.

    On one process ``ctx`` is returned unchanged. Under a process group (DDP), each rank holds
    ``B_r`` queries and candidates ``[positives (B_r); negatives (B_r*k)]``; this returns, on
    every rank, the context of the global batch of ``B = sum(B_r)`` queries with candidates
    ``[positives of all ranks (B); negatives of all ranks (B*k)]``, labels ``0..B-1``, the
    local masks and teacher scores placed on the global grid (other entries unmasked / NaN),
    and ids, texts and pair indices concatenated in rank order.

    **Every rank computes the loss over all B queries** (the same value on every rank), so any
    negative strategy, per-pair state (DBPM) or logged telemetry behaves as on one device.
    Gradient: rank ``r``'s embeddings enter the graph as the local tensors, other ranks' as
    gathered copies without gradient, so backward gives rank ``r`` the exact
    ``dL/d(own embeddings)``; multiplied by the world size ``W`` here, DDP's averaging over
    ranks yields ``(1/W) * sum_r W * dL/dθ|_r = dL/dθ``, the gradient of one process on the
    global batch. No backward communication besides DDP's is needed.

    Shards may differ in size (the last global batch of an epoch); ``k`` (explicit negatives
    per query) must be equal on all ranks, which the miner protocol guarantees. Extra
    candidates and extra logits are added by strategies after gathering.

    Args:
        ctx: this rank's context as built by the module (before negative strategies).
    """
    size, _ = world()
    if size == 1:
        return ctx
    b = ctx.batch_size
    n_neg = ctx.d.shape[0] - b
    if b == 0 or n_neg % b or ctx.extra_logits:
        raise RuntimeError(f"gather_context expects [positives (B); negatives (B*k)] and no "
                           f"extra logits; got B={b}, {ctx.d.shape[0]} candidates")
    meta = {"b": b, "k": n_neg // b, "qids": ctx.qids, "pos_ids": ctx.pos_ids,
            "queries": ctx.queries, "doc_ids": ctx.doc_ids, "doc_texts": ctx.doc_texts,
            "pair_idx": ctx.pair_idx.tolist(), "weights": ctx.weights.detach().cpu(),
            "mask": ctx.mask.cpu() if bool(ctx.mask.any()) else None,
            "teacher": None if ctx.teacher is None else ctx.teacher.detach().float().cpu()}
    metas: list[Any] = [None] * size
    dist.all_gather_object(metas, meta)
    ks = {m["k"] for m in metas}
    if len(ks) != 1:
        raise RuntimeError(f"ranks have different numbers of explicit negatives per query: "
                           f"{[m['k'] for m in metas]}; the miner must return the same k")
    k = ks.pop()
    sizes = [m["b"] for m in metas]
    n_cols = [s * (1 + k) for s in sizes]
    perm = global_candidate_order(sizes, k)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    device = ctx.q.device
    q = torch.cat(all_gather_rows(ctx.q, sizes))
    d = torch.cat(all_gather_rows(ctx.d, n_cols))[torch.as_tensor(perm, device=device)]
    flat_ids = [x for m in metas for x in m["doc_ids"]]
    flat_texts = [x for m in metas for x in m["doc_texts"]]
    teacher = None
    if any(m["teacher"] is not None for m in metas):
        teacher = _place([m["teacher"] for m in metas], sizes, n_cols, inverse, float("nan"),
                         torch.float32, device)
    total = sum(sizes)
    return dataclasses.replace(  # other fields (positives, step, temperature, …) are shared
        ctx, q=q, d=d, doc_ids=[flat_ids[i] for i in perm], doc_texts=[flat_texts[i] for i in perm],
        qids=[x for m in metas for x in m["qids"]],
        pos_ids=[x for m in metas for x in m["pos_ids"]],
        queries=[x for m in metas for x in m["queries"]],
        pair_idx=torch.tensor([x for m in metas for x in m["pair_idx"]], dtype=torch.long,
                              device=device),
        labels=torch.arange(total, device=device),
        mask=_place([m["mask"] for m in metas], sizes, n_cols, inverse, False, torch.bool,
                    device),
        weights=torch.cat([m["weights"] for m in metas]).to(device=device,
                                                            dtype=ctx.weights.dtype),
        teacher=teacher,
    )


__all__ = ["all_gather_rows", "gather_context", "global_candidate_order"]
