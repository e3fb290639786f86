"""dbpm: planted noisy pairs (consistently high loss) are down-weighted; clean ones keep 1."""

from __future__ import annotations

import pytest
import torch

from hnm.negatives.dbpm import DynamicBadPairMining

N, B = 40, 8
NOISY = [3, 17, 29]


def losses_for(idx: torch.Tensor, gen: torch.Generator, low=()) -> torch.Tensor:
    """Clean pairs ~1.0, NOISY pairs 5.0, ``low`` pairs 0.0 (memorised) at every visit."""
    out = 1.0 + 0.05 * torch.randn(idx.numel(), generator=gen)
    out = torch.where(torch.isin(idx, torch.tensor(NOISY)), torch.full_like(out, 5.0), out)
    return torch.where(torch.isin(idx, torch.tensor(list(low), dtype=torch.long)),
                       torch.zeros_like(out), out)


def run_epoch(strat, ctx_factory, epoch: int, gen: torch.Generator, report: bool = True,
              low=()):
    """One epoch over the N pairs in batches of B; returns each pair's weight this epoch."""
    weights = torch.empty(N)
    order = torch.randperm(N, generator=gen)
    for s in range(0, N, B):
        idx = order[s:s + B]
        ctx = ctx_factory(b=B, k=0, epoch=epoch)
        ctx.pair_idx = idx
        ctx = strat(ctx)
        weights[idx] = ctx.weights
        if report:                                   # what the loss does after the strategies
            ctx.state["per_query_loss"] = losses_for(idx, gen, low)
        strat.on_step_end(None)
    return weights


@pytest.mark.parametrize("weighting", ["constant", "gaussian"])
def test_noisy_pairs_are_down_weighted_clean_ones_left_alone(ctx_factory, weighting):
    gen = torch.Generator().manual_seed(0)
    strat = DynamicBadPairMining(threshold=2.0, bad_weight=0.1, weighting=weighting)
    first = run_epoch(strat, ctx_factory, 0, gen)
    assert torch.equal(first, torch.ones(N))                 # no history yet: nothing flagged
    second = run_epoch(strat, ctx_factory, 1, gen)
    noisy = torch.zeros(N, dtype=torch.bool)
    noisy[NOISY] = True
    assert torch.equal(second[~noisy], torch.ones(N - len(NOISY)))
    if weighting == "constant":
        assert torch.allclose(second[noisy], torch.full((len(NOISY),), 0.1))
    else:
        assert (second[noisy] < 0.5).all()
    third = run_epoch(strat, ctx_factory, 2, gen)            # history keeps them flagged
    assert torch.equal(third < 1, noisy)


def test_low_loss_side_is_optional(ctx_factory):
    gen = torch.Generator().manual_seed(1)
    strat = DynamicBadPairMining(threshold=10.0, low_threshold=1.0)
    run_epoch(strat, ctx_factory, 0, gen, low=(8, 9))
    w = run_epoch(strat, ctx_factory, 1, gen, low=(8, 9))
    assert torch.equal((w < 1).nonzero().flatten(), torch.tensor([8, 9]))   # high side off
    plain = DynamicBadPairMining(threshold=10.0)
    run_epoch(plain, ctx_factory, 0, gen, low=(8, 9))
    assert (run_epoch(plain, ctx_factory, 1, gen, low=(8, 9)) == 1).all()


def test_flags_use_history_of_earlier_epochs_only(ctx_factory):
    gen = torch.Generator().manual_seed(2)
    strat = DynamicBadPairMining(warmup_epochs=2)
    run_epoch(strat, ctx_factory, 0, gen)
    assert (run_epoch(strat, ctx_factory, 1, gen) == 1).all()   # one epoch of history < 2
    assert (run_epoch(strat, ctx_factory, 2, gen)[NOISY] < 1).all()


def test_falls_back_to_infonce_when_the_loss_reports_nothing(ctx_factory):
    strat = DynamicBadPairMining()
    run_epoch(strat, ctx_factory, 0, torch.Generator().manual_seed(3), report=False)
    assert (strat.loss_count == 1).all() and torch.isfinite(strat.loss_sum).all()


def test_state_survives_a_checkpoint(ctx_factory):
    gen = torch.Generator().manual_seed(4)
    strat = DynamicBadPairMining()
    run_epoch(strat, ctx_factory, 0, gen)
    fresh = DynamicBadPairMining()
    fresh.load_state_dict(strat.state_dict())
    assert torch.equal(fresh.loss_sum, strat.loss_sum) and fresh.epochs_seen == {0}
    w = run_epoch(fresh, ctx_factory, 1, gen)
    assert (w[NOISY] < 1).all()
