"""InfoNCE against a brute-force per-query loop."""

from __future__ import annotations

import math

import torch

from hnm.losses.infonce import InfoNCELoss
from hnm.types import ScoreContext
from tests.losses._ctx import make_ctx


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


# -- the symmetric InfoNCE term ------------------------------------------------------------------
def _dup_ctx():
    """Query 1 repeats query 0's text (another id); pairs 2 and 3 are one query (q2) with two
    positives, each a known positive of the other pair (the forward mask)."""
    ctx = make_ctx(b=4, k=1, seed=4, grad=True)
    ctx.queries = ["same text", "same text", "query 2", "query 2"]
    ctx.qids = ["q0", "q1", "q2", "q2"]
    ctx.mask[2, 3] = ctx.mask[3, 2] = True
    return ctx


def _brute_backward(ctx, t: float) -> list[float]:
    out = []
    q = ctx.q.detach().double()
    d = ctx.d.detach().double()
    for i in range(ctx.batch_size):
        pos = d[int(ctx.labels[i])]
        keep = [j for j in range(ctx.batch_size)
                if j == i or not (ctx.qids[j] == ctx.qids[i] or ctx.queries[j] == ctx.queries[i]
                                  or ctx.pos_ids[j] == ctx.pos_ids[i]
                                  or bool(ctx.mask[j, int(ctx.labels[i])]))]
        s = [float(pos @ q[j]) / t for j in keep]
        out.append(-float(pos @ q[i]) / t + math.log(sum(math.exp(x) for x in s)))
    return out


def test_symmetric_term_masks_duplicate_queries_and_known_positives() -> None:
    """Before: only identical positive ids were masked, so positive 0 was pushed away from
    query 1 (the same text as its own query) and positive 2 from query 3 (its own query)."""
    ctx = _dup_ctx()
    loss = InfoNCELoss(0.1, symmetric=True)
    forward = InfoNCELoss(0.1).per_query(ctx).detach()
    both = loss.per_query(ctx).detach()
    torch.testing.assert_close(both - forward, torch.tensor(_brute_backward(ctx, 0.1)),
                               rtol=1e-5, atol=1e-5, check_dtype=False)
    fx = loss.effect()
    assert fx["symmetric_terms"] == 4 and fx["symmetric_masked"] == 4   # (0,1) (1,0) (2,3) (3,2)
    assert InfoNCELoss(0.1).effect() == {}                               # nothing to report


def test_symmetric_term_is_float32_under_autocast() -> None:
    """Under bf16 autocast the backward scores must not be rounded to bf16 (the forward ones
    are not, see ScoreContext.scores)."""
    ctx = make_ctx(b=8, k=0, d=64, seed=5, grad=True)
    want = torch.tensor(_brute_backward(ctx, 0.05))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        both = InfoNCELoss(0.05, symmetric=True).per_query(ctx)
        forward = InfoNCELoss(0.05).per_query(ctx)
    assert both.dtype == torch.float32
    torch.testing.assert_close((both - forward).detach().double(), want.double(),
                               rtol=1e-4, atol=1e-4)
