"""Helpers for the negative-strategy tests: a ScoreContext from plain tensors and lists."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hnm.types import ScoreContext


def make_ctx(b: int = 4, k: int = 1, dim: int = 8, seed: int = 0, doc_ids=None, doc_texts=None,
             queries=None, positives=None, q=None, d=None, **kw) -> ScoreContext:
    """B queries, their B positives then B*k explicit negatives (random unit embeddings)."""
    g = torch.Generator().manual_seed(seed)
    n = b * (1 + k)
    q = F.normalize(torch.randn(b, dim, generator=g), dim=-1) if q is None else q
    d = F.normalize(torch.randn(n, dim, generator=g), dim=-1) if d is None else d
    n = d.shape[0]
    doc_ids = doc_ids or [f"d{j}" for j in range(n)]
    doc_texts = doc_texts or [f"document number {j}" for j in range(n)]
    qids = [f"q{i}" for i in range(b)]
    return ScoreContext(
        q=q, d=d, doc_ids=list(doc_ids), doc_texts=list(doc_texts), qids=qids,
        pos_ids=list(doc_ids[:b]), queries=queries or [f"query number {i}" for i in range(b)],
        pair_idx=torch.arange(b), labels=torch.arange(b),
        mask=torch.zeros(b, n, dtype=torch.bool), weights=torch.ones(b),
        positives=positives if positives is not None else {qids[i]: {doc_ids[i]} for i in range(b)},
        **kw)


@pytest.fixture()
def ctx_factory():
    return make_ctx
