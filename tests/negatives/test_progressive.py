"""progressive: easy queries weigh more early, hard ones late; weights have mean 1."""

from __future__ import annotations

import math

import pytest
import torch

from hnm.errors import ConfigError
from hnm.negatives.progressive import ProgressiveWeighting, percentile, schedule_value

POS = [0.9, 0.7, 0.5, 0.3]     # query i's positive score: query 0 easiest ...
NEG = [0.1, 0.3, 0.5, 0.7]     # ... and its explicit negative's score: query 3 hardest


def graded(ctx_factory, step: int, max_steps: int = 100):
    """Query i = e_i; its positive and negative have the planted scores, all else 0."""
    e = torch.eye(8)
    q = e[:4]
    pos = [p * e[i] + math.sqrt(1 - p * p) * e[4] for i, p in enumerate(POS)]
    neg = [s * e[i] + math.sqrt(1 - s * s) * e[5] for i, s in enumerate(NEG)]
    return ctx_factory(b=4, k=1, q=q, d=torch.stack(pos + neg), step=step, max_steps=max_steps)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "step"])
def test_easy_first_then_hard(ctx_factory, schedule):
    strat = ProgressiveWeighting(schedule=schedule, strength=1.0)
    start = strat(graded(ctx_factory, 0)).weights
    end = strat(graded(ctx_factory, 100)).weights
    assert torch.all(start[:-1] > start[1:])             # decreasing with difficulty
    assert torch.all(end[:-1] < end[1:])                 # increasing with difficulty
    for w in (start, end):
        assert w.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert start[0] / start[-1] == pytest.approx(math.exp(2.0), rel=1e-5)


def test_midpoint_is_uniform_and_weights_compose(ctx_factory):
    strat = ProgressiveWeighting(schedule="linear")
    mid = strat(graded(ctx_factory, 50, max_steps=101)).weights
    assert torch.allclose(mid, torch.ones(4))
    ctx = graded(ctx_factory, 0)
    ctx.weights = torch.tensor([2.0, 1.0, 1.0, 1.0])
    w = strat.weights(graded(ctx_factory, 0))
    assert torch.allclose(strat(ctx).weights, torch.tensor([2.0, 1.0, 1.0, 1.0]) * w)


def test_rank_difficulty(ctx_factory):
    strat = ProgressiveWeighting(difficulty="rank")
    # negatives above the positive: only query 3 (0.7 > 0.3); queries 0-2 tie
    assert strat.hardness(graded(ctx_factory, 0)).tolist() == [0.0, 0.0, 0.0, 1.0]
    w = strat(graded(ctx_factory, 100)).weights
    assert w[3] > w[0] and w[0] == w[1] == w[2]


def test_schedules_and_percentile():
    assert schedule_value(0.0, "cosine") == 0.0 and schedule_value(1.0, "cosine") == 1.0
    assert schedule_value(0.25, "cosine") < 0.25 < schedule_value(0.75, "cosine") - 0.5
    assert schedule_value(0.49, "step") == 0.0 and schedule_value(0.5, "step") == 1.0
    assert schedule_value(2.0, "linear") == 1.0
    assert percentile(torch.tensor([3.0, 1.0, 2.0, 2.0])).tolist() == [1.0, 0.0, 0.5, 0.5]


def test_effect_counts_reweighted_queries(ctx_factory):
    strat = ProgressiveWeighting(schedule="linear")
    assert strat.effect() == {"pairs_reweighted": 0.0}
    strat(graded(ctx_factory, 50, max_steps=101))          # mid-training: all weigh 1
    assert strat.effect() == {"pairs_reweighted": 0.0}
    strat(graded(ctx_factory, 0))
    assert strat.effect() == {"pairs_reweighted": 4.0}


@pytest.mark.parametrize(("kw", "knob"), [({"schedule": "exp"}, "linear, cosine, step"),
                                          ({"difficulty": "x"}, "margin, rank"),
                                          ({"strength": 0.0}, "negatives.progressive.strength"),
                                          ({"switch_at": 1.5}, "negatives.progressive.switch_at")])
def test_rejects_bad_knobs(kw, knob):
    with pytest.raises(ConfigError, match=knob):
        ProgressiveWeighting(**kw)
