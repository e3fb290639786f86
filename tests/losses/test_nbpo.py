"""NBPO: hand computation of the likelihood, and the planted false negative whose push shrinks."""

from __future__ import annotations

import math

import pytest
import torch

from hnm.errors import ConfigError
from hnm.losses.infonce import InfoNCELoss
from hnm.losses.nbpo import NBPOLoss
from tests.losses._ctx import make_ctx


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_matches_the_likelihood_by_hand() -> None:
    ctx = make_ctx(b=3, k=1)
    ctx.mask[0, 4] = True  # a known positive: no observation
    loss = NBPOLoss(temperature=0.1, bias=-2.0, flip_rate=0.2)
    got = loss.per_query(ctx)
    s = (ctx.q @ ctx.d.T).tolist()
    for i in range(3):
        p = [_sig(x / 0.1 - 2.0) for x in s[i]]
        pos = math.log(0.8 * p[i])
        neg = [math.log(1 - 0.8 * p[j]) for j in range(6) if j != i and not (i == 0 and j == 4)]
        assert got[i].item() == pytest.approx(-pos - sum(neg) / len(neg), rel=1e-5)


def _planted():
    """Query 0: its positive (column 0), a planted false negative (column 1, the other pair's
    positive, scored like query 0's own) and a true hard negative (column 2, its own mined
    negative, scored clearly lower)."""
    ctx = make_ctx(b=2, k=1, d=4)
    unit = torch.nn.functional.normalize
    ctx.q = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    ctx.d = unit(torch.tensor([[0.95, 0, 0.31, 0], [0.95, 0.31, 0, 0], [0.45, 0, 0, 0.89],
                               [0.1, 0, 0, 0.99]]), dim=1)
    return ctx


def _grad_on_scores(loss, ctx) -> torch.Tensor:
    scores = (ctx.q @ ctx.d.T).detach().requires_grad_(True)
    ctx.scores = lambda: scores  # type: ignore[method-assign]
    loss.per_query(ctx)[0].backward()
    return scores.grad[0]


def test_the_push_on_a_planted_false_negative_is_smaller_than_infonces() -> None:
    ctx = _planted()
    s = (ctx.q @ ctx.d.T)[0].tolist()
    assert s[1] == pytest.approx(s[0], abs=0.01) and s[2] < s[1] - 0.4
    info = _grad_on_scores(InfoNCELoss(0.05), _planted())
    nbpo = _grad_on_scores(NBPOLoss(0.05, bias=-10.0, flip_rate=0.2), _planted())
    bpo = _grad_on_scores(NBPOLoss(0.05, bias=-10.0, flip_rate=0.0), _planted())
    # a positive gradient on a score = the loss pushes that candidate away
    assert 0 < nbpo[1] < info[1] / 100
    # InfoNCE (and noise-free BPO) push the false negative hardest; NBPO pushes the true
    # hard negative far more than the false negative
    assert info[1] > info[2] and bpo[1] > bpo[2]
    assert nbpo[2] > 10 * nbpo[1]


def test_flip_rate_and_bias_can_be_learned_and_are_reported() -> None:
    loss = NBPOLoss(flip_rate=0.1, learn_flip=True)
    assert loss.flip_logit.requires_grad and loss.bias.requires_grad
    assert float(loss.flip_rate) == pytest.approx(0.1)
    ctx = make_ctx()
    loss(ctx).backward()
    assert loss.flip_logit.grad is not None and loss.bias.grad is not None
    fx = loss.effect()
    assert fx["unlabeled_candidates"] == 4 * 12 - 4 and fx["expected_false_negatives"] > 0
    assert set(loss.model.state_dict()) == {"bias", "flip_logit", "bias_set"}
    assert not NBPOLoss(learn_bias=False).bias.requires_grad


@pytest.mark.parametrize("kw", [{"flip_rate": 1.0}, {"flip_rate": -0.1}, {"temperature": 0},
                                {"flip_rate": 0.0, "learn_flip": True},
                                {"negative_weight": 0}])
def test_invalid_knobs_are_config_errors(kw) -> None:
    with pytest.raises(ConfigError, match="loss\\."):
        NBPOLoss(**kw)


def test_a_null_bias_starts_midway_between_positive_and_unlabeled_scores() -> None:
    ctx = make_ctx(b=3, k=1)
    loss = NBPOLoss(temperature=0.1)
    assert not bool(loss.bias_set)
    loss(ctx)
    z = (ctx.q @ ctx.d.T) / 0.1
    usable = ctx.negative_mask()
    want = -(z.diagonal()[:3].mean() + z[usable].mean()) / 2
    assert float(loss.bias) == pytest.approx(float(want), rel=1e-5)
    kept = float(loss.bias)
    loss(make_ctx(b=3, k=1, seed=5))  # set once: a later batch does not move it
    assert float(loss.bias) == kept
    resumed = NBPOLoss(temperature=0.1)
    resumed.model.load_state_dict(loss.model.state_dict())
    assert bool(resumed.bias_set) and float(resumed.bias) == kept
