"""AR2: the alternation, the ranker's objective and the retriever's pull towards the ranker."""

from __future__ import annotations

import pytest
import torch

from hnm.errors import ConfigError
from hnm.miners.ar2 import NO_RANKER, AR2Miner, period_phases
from hnm.types import ScoreContext

FRESH = {"model": "fresh"}  # the opt-in to an untrained ranker head (null refuses)


class StubRanker(torch.nn.Module):
    """A ranker whose logit for (query, doc) is a learnable entry of a table."""

    def __init__(self, logits: dict[tuple[str, str], float]) -> None:
        super().__init__()
        self.keys = list(logits)
        self.table = torch.nn.Parameter(torch.tensor([logits[k] for k in self.keys]))

    def forward(self, queries, docs):
        return torch.stack([self.table[self.keys.index((q, d))] for q, d in zip(queries, docs)])


def one_hot_ctx(b: int = 2, k: int = 3) -> ScoreContext:
    """Candidates are the standard basis, so ``scores() == q``: the gradient with respect to
    ``q`` is the gradient with respect to every (query, candidate) score."""
    n = b * (1 + k)
    q = (0.1 * torch.randn(b, n, generator=torch.Generator().manual_seed(0))).requires_grad_()
    ids = [f"p{i}" for i in range(b)] + [f"n{i}" for i in range(b * k)]
    return ScoreContext(q=q, d=torch.eye(n), doc_ids=ids, doc_texts=ids,
                        qids=[f"q{i}" for i in range(b)], pos_ids=ids[:b],
                        queries=[f"q{i}" for i in range(b)], pair_idx=torch.arange(b),
                        labels=torch.arange(b), mask=torch.zeros(b, n, dtype=torch.bool),
                        weights=torch.ones(b), num_negatives=k, temperature=0.5)


def miner_with(ctx: ScoreContext, logits: torch.Tensor, **kw) -> AR2Miner:
    miner = AR2Miner(refresh_every_n_steps=4, num_negatives=ctx.num_negatives, verbose=False,
                     ranker=FRESH, **kw)
    cols, _ = miner.candidates_of(ctx)
    table = {(ctx.queries[i], ctx.doc_texts[int(c)]): float(logits[i, j])
             for i in range(ctx.batch_size) for j, c in enumerate(cols[i])}
    miner.ranker = StubRanker(table)  # type: ignore[assignment]
    miner._period = 4
    return miner


def test_the_retriever_gradient_points_towards_the_rankers_distribution() -> None:
    ctx = one_hot_ctx()
    r = torch.tensor([[2.0, 3.0, -1.0, 0.0], [1.0, 0.0, 0.0, 4.0]])  # ranker logits, pos first
    miner = miner_with(ctx, r)
    cols, valid = miner.candidates_of(ctx)
    kl, _ = miner.retriever_terms(ctx, r, cols, valid)
    kl.backward()
    rows = torch.arange(2)[:, None]
    s = ctx.q.detach()[rows, cols] / ctx.temperature
    p_ret, p_rank = torch.softmax(s, 1), torch.softmax(r, 1)
    descent = -ctx.q.grad[rows, cols]  # how gradient descent moves each candidate's score
    want = (p_rank - p_ret) / ctx.temperature / 2  # d KL / d s, averaged over 2 queries
    assert torch.allclose(descent, want, atol=1e-5)
    # the candidate the ranker prefers most gains retriever probability after a small step
    with torch.no_grad():
        after = torch.softmax((ctx.q - 0.05 * ctx.q.grad)[rows, cols] / ctx.temperature, 1)
    top = p_rank.argmax(1)
    assert torch.all(after[torch.arange(2), top] > p_ret[torch.arange(2), top])
    assert (after - p_rank).abs().sum() < (p_ret - p_rank).abs().sum()
    # no gradient on columns outside each query's own candidate list
    outside = torch.ones_like(ctx.q, dtype=torch.bool)
    outside[rows, cols] = False
    assert not ctx.q.grad[outside].any()


def test_ranker_steps_train_the_ranker_only_and_retriever_steps_the_retriever_only() -> None:
    r = torch.tensor([[0.0, 1.0, 0.5, -1.0], [0.3, 0.2, 0.1, 0.0]])
    ctx = one_hot_ctx()
    miner = miner_with(ctx, r)
    assert period_phases(miner, 8) == ["ranker"] * 2 + ["retriever"] * 2 + \
        ["ranker"] * 2 + ["retriever"] * 2
    base = (ctx.q ** 2).sum()  # stands for the retriever's own loss
    ctx.step = 1  # a ranker step: the listwise cross-entropy of the positive
    out = miner.joint_loss(ctx, base)
    want = torch.nn.functional.cross_entropy(r, torch.zeros(2, dtype=torch.long))
    assert float(out) == pytest.approx(float(want), abs=1e-5)
    out.backward()
    assert ctx.q.grad is None and miner.ranker.table.grad is not None
    assert miner.ranker.training
    ctx = one_hot_ctx()
    miner.ranker.table.grad = None
    ctx.step = 2  # a retriever step: its loss plus the KL term, the ranker frozen
    base = (ctx.q ** 2).sum()
    out = miner.joint_loss(ctx, base)
    assert float(out) > float(base) and "ar2_kl" in ctx.logs
    out.backward()
    assert ctx.q.grad is not None and miner.ranker.table.grad is None
    assert not miner.ranker.training
    fx = miner.effect()
    assert fx["ranker_steps"] == 1 and fx["retriever_steps"] == 1
    assert fx["pairs_ranked"] == 16 and fx["candidates_distilled"] == 8


def test_masked_candidates_are_neither_ranked_nor_distilled() -> None:
    ctx = one_hot_ctx()
    ctx.mask[0, 2 + 1] = True  # query 0's second explicit negative: a known positive
    miner = miner_with(ctx, torch.zeros(2, 4), alternate=False)
    base = (ctx.q ** 2).sum()
    (miner.joint_loss(ctx, base) - base).backward()
    assert ctx.q.grad[0, 3] == 0 and ctx.q.grad[0, 2] != 0
    assert miner.effect()["pairs_ranked"] == 7


def test_alternation_needs_two_steps_per_period() -> None:
    miner = AR2Miner(refresh_every_n_steps=1, verbose=False, ranker=FRESH)
    with pytest.raises(ConfigError, match="alternate"):
        miner.check_schedule(1, 8)
    AR2Miner(refresh_every_n_steps=1, alternate=False, verbose=False,
             ranker=FRESH).check_schedule(1, 8)
    with pytest.raises(ConfigError, match="unknown knob"):
        AR2Miner(ranker={"lr": 1e-5, "lrr": 1})
    with pytest.raises(ConfigError):
        AR2Miner(ranker_fraction=1.0, ranker=FRESH)


@pytest.mark.parametrize("ranker", [None, {}, {"model": None}, {"model": ""}])
def test_no_ranker_is_refused(ranker) -> None:
    """The fresh head stayed at chance in a short run and pulled the retriever below the
    starting model: it is an explicit opt-in (``fresh``), never a default."""
    miner = AR2Miner(ranker=ranker, verbose=False)  # hnm mine never builds the ranker
    with pytest.raises(ConfigError) as err:
        miner.models(object(), None)  # training: refused before the encoder is read
    assert str(err.value) == NO_RANKER and "miner.ranker.model=fresh" in NO_RANKER


def test_alternation_says_how_many_steps_the_retriever_gets(caplog: pytest.LogCaptureFixture) -> None:
    # a comparison at equal max_steps gives AR2's retriever fewer updates than the baseline's;
    # the run says so, with the counts of period_phases
    miner = AR2Miner(refresh_every_fraction=0.25, verbose=False, ranker=FRESH)
    with caplog.at_level("WARNING", logger="hnm.miners.ar2"):
        miner.check_schedule(1, 32)
    retriever = period_phases(miner, 32).count("retriever")
    assert retriever == 16
    assert "16 of the run's 32 optimizer steps" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hnm.miners.ar2"):
        AR2Miner(refresh_every_fraction=0.25, alternate=False, verbose=False,
                 ranker=FRESH).check_schedule(1, 32)
    assert "optimizer steps" not in caplog.text
