"""InfoNCE's directions, partition modes and hardness weighting: hand computations, the
defaults' identity with the plain loss, and sentence-transformers' own loss on the same scores."""

from __future__ import annotations

import math

import pytest
import torch

from hnm.errors import ConfigError
from hnm.losses.cached_infonce import CachedInfoNCELoss
from hnm.losses.infonce import InfoNCELoss
from tests.losses._ctx import make_ctx

T = 0.1


def _lse(xs: list[float]) -> float:
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _hand(ctx, directions, partition_mode, hardness_mode=None, alpha=0.0) -> list[float]:
    """Per-query losses by plain loops over the candidates (nothing masked)."""
    b, k = ctx.batch_size, ctx.num_negatives
    q, d = ctx.q.detach(), ctx.d.detach()
    out = []
    for i in range(b):
        own = {i, *(b + i * k + j for j in range(k))}
        q2d = []
        for j in range(d.shape[0]):
            s = float(q[i] @ d[j])
            hard = j in own and j != i
            in_batch = j not in own
            chosen = {"in_batch_negatives": in_batch, "hard_negatives": hard,
                      "all_negatives": j != i, None: False}[hardness_mode]
            q2d.append(s / T + (alpha * s if chosen else 0.0))
        rows = {"query_to_doc": q2d,
                "doc_to_query": [float(d[i] @ q[j]) / T for j in range(b)],
                "query_to_query": [float(q[i] @ q[j]) / T for j in range(b) if j != i],
                "doc_to_doc": [float(d[i] @ d[j]) / T for j in range(d.shape[0])
                               if j not in own]}
        chosen_rows = [rows[x] for x in directions]
        pos = float(q[i] @ d[i]) / T
        if partition_mode == "joint":
            log_z = _lse([x for r in chosen_rows for x in r])
        else:
            log_z = sum(_lse(r) for r in chosen_rows) / len(chosen_rows)
        out.append(log_z - pos)
    return out


CASES = [
    (["query_to_doc", "doc_to_query"], "joint", None, 0.0),
    (["query_to_doc", "doc_to_query"], "per_direction", None, 0.0),
    (["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"], "joint", None, 0.0),
    (["query_to_doc", "doc_to_doc"], "joint", None, 0.0),
    (["query_to_doc"], "joint", "in_batch_negatives", 9.0),
    (["query_to_doc"], "joint", "hard_negatives", 5.0),
    (["query_to_doc", "doc_to_query"], "per_direction", "all_negatives", 3.0),
]


@pytest.mark.parametrize(("directions", "mode", "hardness", "alpha"), CASES)
def test_matches_hand_computation(directions, mode, hardness, alpha) -> None:
    ctx = make_ctx(b=4, k=2)
    loss = InfoNCELoss(T, directions=directions, partition_mode=mode, hardness_mode=hardness,
                       hardness_strength=alpha)
    got = loss.per_query(ctx)
    torch.testing.assert_close(got, torch.tensor(_hand(ctx, directions, mode, hardness, alpha)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("directions", "mode", "hardness", "alpha"), CASES)
def test_equals_sentence_transformers_on_the_same_embeddings(directions, mode, hardness,
                                                             alpha) -> None:
    st = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    b, k = 4, 2
    ctx = make_ctx(b=b, k=k)
    pos, negs = ctx.d[:b], ctx.d[b:].reshape(b, k, -1)
    columns = [ctx.q, pos, *(negs[:, j] for j in range(k))]
    ref = st.MultipleNegativesRankingLoss(
        torch.nn.Identity(), scale=1 / T, directions=tuple(directions), partition_mode=mode,
        hardness_mode=hardness, hardness_strength=alpha)
    want = ref.compute_loss_from_embeddings(columns, None)
    ours = InfoNCELoss(T, directions=directions, partition_mode=mode, hardness_mode=hardness,
                       hardness_strength=alpha)(ctx)
    assert ours.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)


def test_defaults_give_the_plain_loss_and_its_gradient_exactly() -> None:
    for seed in range(3):
        a, b = make_ctx(seed=seed, grad=True), make_ctx(seed=seed, grad=True)
        a.mask[0, 5] = b.mask[0, 5] = True
        plain = InfoNCELoss(T)
        explicit = InfoNCELoss(T, directions=["query_to_doc"], partition_mode="joint",
                               hardness_mode=None, hardness_strength=0.0)
        la, lb = plain(a), explicit(b)
        assert la.item() == lb.item()
        la.backward()
        lb.backward()
        assert torch.equal(a.q.grad, b.q.grad) and torch.equal(a.d.grad, b.d.grad)


def test_hardness_raises_the_gradient_on_the_hardest_negative() -> None:
    """Robinson et al.: the weight of a negative grows with exp(alpha * score), so the hardest
    explicit negative gets a larger share of the push than without hardness."""
    ctx = make_ctx(b=2, k=2, grad=True)
    with torch.no_grad():  # query 0's first explicit negative (column 2) is near its query
        ctx.d[2] = torch.nn.functional.normalize(ctx.q[0] + 0.3 * ctx.d[3], dim=0)

    def share(loss) -> float:
        logits = loss.per_query(ctx)[0]
        (g,) = torch.autograd.grad(logits, ctx.d)
        norms = g.norm(dim=1)
        return float(norms[2] / norms[2:].sum())

    assert share(InfoNCELoss(T, hardness_mode="hard_negatives", hardness_strength=5.0)) > \
        share(InfoNCELoss(T))


def test_masked_candidates_stay_out_of_every_direction() -> None:
    ctx = make_ctx(b=3, k=1)
    ctx.mask[0, 1] = True  # query 0's in-batch column 1 is a known positive
    full = ["query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"]
    a = InfoNCELoss(T, directions=full).per_query(ctx)
    with torch.no_grad():
        ctx.d[1] += 5.0  # a masked column moved far: query 0's q2d and d2d rows ignore it
    b = InfoNCELoss(T, directions=full).per_query(ctx)
    # row 0 meets d[1] only in its query_to_doc and doc_to_doc rows, where it is masked
    assert a[0].item() == pytest.approx(b[0].item(), abs=1e-5)


def test_cached_infonce_takes_the_same_knobs() -> None:
    ctx = make_ctx()
    kw = {"directions": ["query_to_doc", "doc_to_query"], "partition_mode": "per_direction",
          "hardness_mode": "all_negatives", "hardness_strength": 2.0}
    assert CachedInfoNCELoss(T, **kw)(ctx).item() == InfoNCELoss(T, **kw)(ctx).item()


@pytest.mark.parametrize("kw", [
    {"directions": []}, {"directions": ["doc_to_query"]}, {"directions": ["query_to_doc", "x"]},
    {"directions": ["query_to_doc", "doc_to_doc"], "partition_mode": "per_direction"},
    {"partition_mode": "both"}, {"hardness_mode": "easy", "hardness_strength": 1.0},
    {"hardness_mode": "hard_negatives"}, {"hardness_strength": -1.0},
    {"symmetric": True, "directions": ["query_to_doc", "doc_to_query"]},
])
def test_invalid_knobs_are_config_errors(kw) -> None:
    with pytest.raises(ConfigError, match="loss\\."):
        InfoNCELoss(T, **kw)


def test_effect_counts_direction_rows_and_weighted_negatives() -> None:
    ctx = make_ctx(b=4, k=2)
    loss = InfoNCELoss(T, directions=["query_to_doc", "doc_to_query"],
                       hardness_mode="hard_negatives", hardness_strength=1.0)
    loss(ctx)
    fx = loss.effect()
    assert fx["direction_terms"] == 4 and fx["hardness_weighted"] == 4 * 2
    assert InfoNCELoss(T).effect() == {}
