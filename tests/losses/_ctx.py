"""A small ScoreContext with explicit negatives, for loss tests."""

from __future__ import annotations

import torch

from hnm.types import ScoreContext


def make_ctx(b: int = 4, k: int = 2, d: int = 8, seed: int = 0, grad: bool = False
             ) -> ScoreContext:
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    docs = torch.nn.functional.normalize(torch.randn(b * (1 + k), d, generator=g), dim=1)
    q.requires_grad_(grad)
    docs.requires_grad_(grad)
    ids = [f"p{i}" for i in range(b)] + [f"n{i}" for i in range(b * k)]
    return ScoreContext(
        q=q, d=docs, doc_ids=ids, doc_texts=[f"text {x}" for x in ids],
        qids=[f"q{i}" for i in range(b)], pos_ids=ids[:b], queries=[f"query {i}" for i in range(b)],
        pair_idx=torch.arange(b), labels=torch.arange(b),
        mask=torch.zeros(b, b * (1 + k), dtype=torch.bool), weights=torch.ones(b),
        num_negatives=k)


def per_pair_teacher(ctx: ScoreContext, seed: int = 1) -> torch.Tensor:
    """(B, N) teacher scores known only at each query's positive and own explicit negatives."""
    b, n, k = ctx.batch_size, ctx.d.shape[0], ctx.num_negatives
    g = torch.Generator().manual_seed(seed)
    t = torch.full((b, n), float("nan"))
    for i in range(b):
        t[i, i] = float(torch.rand(1, generator=g)) + 0.5
        for j in range(k):
            t[i, b + i * k + j] = float(torch.rand(1, generator=g))
    return t
