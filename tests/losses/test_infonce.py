"""InfoNCE against a brute-force per-query loop."""

from __future__ import annotations

import math

import torch

from hnm.losses.infonce import InfoNCELoss
from hnm.modules.context import ScoreContext


def _ctx(b: int = 4, k: int = 2, d: int = 8, seed: int = 0) -> ScoreContext:
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    docs = torch.nn.functional.normalize(torch.randn(b * (1 + k), d, generator=g), dim=1)
    ids = [f"p{i}" for i in range(b)] + [f"n{i}" for i in range(b * k)]
    return ScoreContext(
        q=q, d=docs, doc_ids=ids, doc_texts=ids, qids=[f"q{i}" for i in range(b)],
        pos_ids=ids[:b], queries=[""] * b, pair_idx=torch.arange(b), labels=torch.arange(b),
        mask=torch.zeros(b, b * (1 + k), dtype=torch.bool), weights=torch.ones(b))


def _brute(ctx: ScoreContext, t: float) -> float:
    total = 0.0
    for i in range(ctx.batch_size):
        scores = []
        for j in range(ctx.d.shape[0]):
            if ctx.mask[i, j] and j != ctx.labels[i]:
                continue
            scores.append(float(ctx.q[i] @ ctx.d[j]) / t)
        for e in ctx.extra_logits:
            scores += [float(x) / t for x in e[i]]
        pos = float(ctx.q[i] @ ctx.d[ctx.labels[i]]) / t
        total += ctx.weights[i].item() * (-pos + math.log(sum(math.exp(s) for s in scores)))
    return total / ctx.batch_size


def test_matches_brute_force_with_masks_extras_and_weights() -> None:
    ctx = _ctx()
    ctx.mask[0, 5] = True
    ctx.mask[2, 1] = True
    ctx.mask[1, 1] = True  # a label column: must be ignored
    ctx.extra_logits = [torch.randn(4, 3, generator=torch.Generator().manual_seed(1))]
    ctx.weights = torch.tensor([1.0, 0.5, 2.0, 1.0])
    loss = InfoNCELoss(temperature=0.1)(ctx)
    assert abs(loss.item() - _brute(ctx, 0.1)) < 1e-4


def test_scores_have_in_batch_and_explicit_columns() -> None:
    ctx = _ctx(b=3, k=2)
    assert ctx.scores().shape == (3, 9)


def test_symmetric_adds_document_to_query_term() -> None:
    ctx = _ctx()
    plain = InfoNCELoss(temperature=0.1)(ctx).item()
    sym = InfoNCELoss(temperature=0.1, symmetric=True)(ctx).item()
    back = 0.0
    for i in range(4):
        row = [float(ctx.d[i] @ ctx.q[j]) / 0.1 for j in range(4)]
        back += -row[i] + math.log(sum(math.exp(s) for s in row))
    assert abs(sym - (plain + back / 4)) < 1e-4
