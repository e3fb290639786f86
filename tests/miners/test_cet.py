"""CET: the coupled selection/relevance fit and the weights it puts on explicit negatives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnm.errors import ConfigError
from hnm.losses.infonce import InfoNCELoss
from hnm.miners.cet import CetMiner, SelectionRelevance, fit_coupled
from tests.losses._ctx import make_ctx


def pooled_labels(n_queries: int = 300, depth: int = 30, seed: int = 0):
    """Each query: ``depth`` pooled candidates by rank; two relevant documents among the top 6
    (score ~0.8), the rest irrelevant (score ~0.3). A relevant document at rank ``ρ`` is
    labelled with probability ``σ(1.5 − 1.2·log ρ)`` (the annotators' pool), so about half of
    the relevant ones at the top ranks are planted unlabeled positives."""
    rng = np.random.default_rng(seed)
    ranks, scores, y, relevant = [], [], [], []
    for _ in range(n_queries):
        rel = set(rng.choice(6, size=2, replace=False).tolist())
        for r in range(depth):
            is_rel = r in rel
            s = rng.normal(0.8 if is_rel else 0.3, 0.08)
            shown = rng.random() < 1 / (1 + np.exp(-(1.5 - 1.2 * np.log(r + 1))))
            ranks.append(r + 1)
            scores.append(s)
            y.append(float(is_rel and shown))
            relevant.append(is_rel)
    t = lambda x: torch.tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731
    return t(ranks), t(scores), t(y), np.asarray(relevant)


def test_the_fit_down_weights_planted_unlabeled_positives_at_top_ranks() -> None:
    rank, score, y, relevant = pooled_labels()
    model = SelectionRelevance()
    nll = fit_coupled(model, rank, score, y, steps=400, lr=0.05)
    assert np.isfinite(nll)
    with torch.no_grad():
        w = model.irrelevant_given_unlabeled(rank, score).numpy()
        pi = torch.sigmoid(model.selection_logit(torch.arange(1.0, 31.0))).numpy()
    unlabeled = y.numpy() == 0
    false_neg = unlabeled & relevant          # relevant but never shown: unjudged positives
    true_neg = unlabeled & ~relevant
    top = rank.numpy() <= 6
    assert (false_neg & top).sum() > 100      # the case is really planted
    assert w[false_neg & top].mean() < 0.35   # counted little as negatives...
    assert w[true_neg & top].mean() > 0.9     # ...while the true negatives count fully
    assert np.all(np.diff(pi) <= 1e-6) and pi[0] > pi[-1] + 0.2  # selection falls with rank
    # a plain hard-negative loss would weight both 1: the weights separate them
    assert w[true_neg & top].mean() - w[false_neg & top].mean() > 0.5


def test_weights_reach_the_explicit_negatives_and_shrink_their_gradient() -> None:
    miner = CetMiner(num_negatives=2, verbose=False)
    ctx = make_ctx(b=2, k=2, d=4, grad=True)
    miner.pool = object()  # type: ignore[assignment]  # mined (only the ranks are used here)
    miner.qids = ["q0", "q1"]
    miner.doc_row = {d: i for i, d in enumerate(ctx.doc_ids)}
    miner._rank = {(0, miner.doc_row["n0"]): 1, (0, miner.doc_row["n1"]): 2}
    with torch.no_grad():  # n0 scores like a positive at rank 1; the others low
        ctx.d[2] = ctx.q[0]
    miner.model = SelectionRelevance(a=0.0, b=0.5, c=0.5, alpha=20.0)
    out = miner.shape_context(ctx)
    w = out.candidate_weights
    assert w is not None and w.shape == (2, 6)
    explicit = {(0, 2), (0, 3), (1, 4), (1, 5)}
    for i in range(2):
        for j in range(6):
            if (i, j) not in explicit:
                assert w[i, j] == 1.0  # positives and in-batch negatives untouched
    assert w[0, 2] < 0.2 < 0.9 < w[0, 3]  # the likely false negative counts little
    InfoNCELoss(0.05)(out).backward()
    pushed = ctx.d.grad[2].norm()
    ctx2 = make_ctx(b=2, k=2, d=4, grad=True)
    with torch.no_grad():
        ctx2.d[2] = ctx2.q[0]
    InfoNCELoss(0.05)(ctx2).backward()
    # the likely false negative is pushed away from its query far less than without CET
    assert pushed < 0.3 * ctx2.d.grad[2].norm()
    fx = miner.effect()
    assert fx["negatives_weighted"] == 4 and fx["negatives_downweighted"] == 1
    assert 0.8 < fx["weight_mass_removed"] < 1.2


def test_the_online_likelihood_trains_only_the_coupled_models() -> None:
    miner = CetMiner(num_negatives=2, verbose=False)
    ctx = make_ctx(b=2, k=2, d=4, grad=True)
    miner.pool = object()  # type: ignore[assignment]
    miner.qids, miner.doc_row = ["q0", "q1"], {d: i for i, d in enumerate(ctx.doc_ids)}
    ctx = miner.shape_context(ctx)
    base = InfoNCELoss(0.05)(ctx)
    total = miner.joint_loss(ctx, base)
    assert float(total) > float(base) and "cet_nll" in ctx.logs
    (total - base).backward()
    assert ctx.q.grad is None or not ctx.q.grad.any()  # it never moves the retriever
    assert all(p.grad is not None for p in miner.model.parameters())
    assert miner.param_groups()[0]["lr"] == miner.selection_lr


@pytest.mark.parametrize("knob", [{"weight_floor": 1.0}, {"fit_lr": 0.0}, {"fit_steps": -1}])
def test_bad_knobs_are_refused(knob) -> None:
    with pytest.raises(ConfigError):
        CetMiner(**knob)
