"""dbpm: planted noisy pairs (consistently high loss) are down-weighted; clean ones keep 1.

The history rule judges pairs by the losses the module hands to ``after_loss``; the
within-epoch rule judges pairs without history by their current in-batch InfoNCE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hnm.errors import ConfigError
from hnm.losses.infonce import masked_logits
from hnm.negatives.dbpm import DynamicBadPairMining

N, B = 40, 8
NOISY = [3, 17, 29]


def losses_for(idx: torch.Tensor, gen: torch.Generator, low=()) -> torch.Tensor:
    """Clean pairs ~1.0, NOISY pairs 5.0, ``low`` pairs 0.0 (memorised) at every visit."""
    out = 1.0 + 0.05 * torch.randn(idx.numel(), generator=gen)
    out = torch.where(torch.isin(idx, torch.tensor(NOISY)), torch.full_like(out, 5.0), out)
    return torch.where(torch.isin(idx, torch.tensor(list(low), dtype=torch.long)),
                       torch.zeros_like(out), out)


def history_only(**kw) -> DynamicBadPairMining:
    return DynamicBadPairMining(within_epoch_warmup=None, **kw)


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
        # what the module does after the loss: the loss's per-query values, or None
        strat.after_loss(ctx, losses_for(idx, gen, low) if report else None)
    return weights


@pytest.mark.parametrize("weighting", ["constant", "gaussian"])
def test_noisy_pairs_are_down_weighted_clean_ones_left_alone(ctx_factory, weighting):
    gen = torch.Generator().manual_seed(0)
    strat = history_only(threshold=2.0, bad_weight=0.1, weighting=weighting)
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
    assert strat.effect() == {"pairs_flagged": 6.0, "pairs_flagged_within_epoch": 0.0,
                              "pairs_reweighted": 6.0}


def test_low_loss_side_is_optional(ctx_factory):
    gen = torch.Generator().manual_seed(1)
    strat = history_only(threshold=10.0, low_threshold=1.0)
    run_epoch(strat, ctx_factory, 0, gen, low=(8, 9))
    w = run_epoch(strat, ctx_factory, 1, gen, low=(8, 9))
    assert torch.equal((w < 1).nonzero().flatten(), torch.tensor([8, 9]))   # high side off
    plain = history_only(threshold=10.0)
    run_epoch(plain, ctx_factory, 0, gen, low=(8, 9))
    assert (run_epoch(plain, ctx_factory, 1, gen, low=(8, 9)) == 1).all()


def test_flags_use_history_of_earlier_epochs_only(ctx_factory):
    gen = torch.Generator().manual_seed(2)
    strat = history_only(warmup_epochs=2)
    run_epoch(strat, ctx_factory, 0, gen)
    assert (run_epoch(strat, ctx_factory, 1, gen) == 1).all()   # one epoch of history < 2
    assert (run_epoch(strat, ctx_factory, 2, gen)[NOISY] < 1).all()


def test_records_exactly_what_the_loss_reports(ctx_factory):
    strat = history_only()
    ctx = strat(ctx_factory(b=4, k=1))
    strat.after_loss(ctx, torch.tensor([0.5, 1.5, 2.5, 3.5]))
    assert strat.loss_sum.tolist() == [0.5, 1.5, 2.5, 3.5]
    assert strat.loss_count.tolist() == [1, 1, 1, 1]
    assert ctx.logs["dbpm_loss_fallback"] == 0.0 and strat.fallback_batches == 0
    with pytest.raises(RuntimeError, match="3 per-query values for a batch of 4"):
        strat.after_loss(ctx, torch.ones(3))


def test_falls_back_to_infonce_visibly_when_the_loss_reports_nothing(ctx_factory):
    strat = history_only()
    ctx = ctx_factory(b=4, k=1)
    ctx.mask[0, 5] = True
    ctx = strat(ctx)
    strat.after_loss(ctx, None)
    ref = F.cross_entropy(masked_logits(ctx, ctx.temperature).float(), ctx.labels,
                          reduction="none")
    assert torch.allclose(strat.loss_sum.float(), ref, atol=1e-6)
    assert ctx.logs["dbpm_loss_fallback"] == 1.0 and strat.fallback_batches == 1
    run_epoch(strat, ctx_factory, 0, torch.Generator().manual_seed(3), report=False)
    assert strat.fallback_batches == 1 + N // B
    assert (strat.loss_count[:N] >= 1).all() and torch.isfinite(strat.loss_sum).all()


def graded_batch(ctx_factory, step: int, noisy_rows=(3,), b: int = B):
    """Batch ``step`` of distinct pairs: query i = e_i, its positive e_i (loss ~0), except
    ``noisy_rows`` whose positive is orthogonal to everything (loss log(b))."""
    e = torch.eye(2 * b)
    d = e[:b].clone()
    for r in noisy_rows:
        d[r] = e[b + r]
    ctx = ctx_factory(b=b, k=0, q=e[:b].clone(), d=d, step=step, max_steps=4)
    ctx.pair_idx = torch.arange(b) + step * b
    return ctx


def test_within_epoch_rule_flags_a_high_current_loss_after_its_warm_up(ctx_factory):
    strat = DynamicBadPairMining(within_epoch_warmup=0.25, bad_weight=0.1)
    weights = []
    for step in range(4):
        ctx = strat(graded_batch(ctx_factory, step))
        weights.append(ctx.weights.clone())
        strat.after_loss(ctx, None)
    assert torch.equal(weights[0], torch.ones(B))                # step 0: the warm-up
    expected = torch.ones(B)
    expected[3] = 0.1
    for w in weights[1:]:
        assert torch.allclose(w, expected)
    assert strat.effect() == {"pairs_flagged": 3.0, "pairs_flagged_within_epoch": 3.0,
                              "pairs_reweighted": 3.0}


def test_history_takes_precedence_over_the_current_loss(ctx_factory):
    """A pair with history is judged by it: a high current loss with a clean history keeps
    weight 1, while the same current loss of a pair without history is flagged."""
    strat = DynamicBadPairMining(within_epoch_warmup=0.25, bad_weight=0.1)
    for step in range(4):                       # epoch 0: the loss reports ~1 for every pair
        ctx = strat(graded_batch(ctx_factory, step))
        strat.after_loss(ctx, 1.0 + 0.01 * torch.arange(B))

    def epoch1(pair3: int) -> torch.Tensor:
        ctx = graded_batch(ctx_factory, 0)      # row 3's current loss is high (log B)
        ctx.epoch, ctx.step = 1, 4
        ctx.pair_idx[3] = pair3
        return strat(ctx).weights

    assert epoch1(3)[3] == 1.0                  # pair 3: a clean history, judged by it
    assert epoch1(99)[3] == pytest.approx(0.1)  # no history: judged by its current loss


def test_check_schedule_refuses_a_run_where_it_can_never_act():
    DynamicBadPairMining().check_schedule(1, 4)                  # the within-epoch rule acts
    history_only().check_schedule(2, 8)                          # the history rule acts
    with pytest.raises(ConfigError, match=r"negatives\.dbpm\.warmup_epochs=1.*"
                                          r"trainer\.max_epochs.*within_epoch_warmup=null"):
        history_only().check_schedule(1, 4)
    with pytest.raises(ConfigError, match="warmup_epochs=2"):
        history_only(warmup_epochs=2).check_schedule(2, 8)
    with pytest.raises(ConfigError, match="starts it at step 1, after the last one"):
        DynamicBadPairMining(within_epoch_warmup=0.5).check_schedule(1, 1)


def test_state_survives_a_checkpoint(ctx_factory):
    gen = torch.Generator().manual_seed(4)
    strat = history_only()
    run_epoch(strat, ctx_factory, 0, gen)
    fresh = history_only()
    fresh.load_state_dict(strat.state_dict())
    assert torch.equal(fresh.loss_sum, strat.loss_sum) and fresh.epochs_seen == {0}
    w = run_epoch(fresh, ctx_factory, 1, gen)
    assert (w[NOISY] < 1).all()


@pytest.mark.parametrize(("kw", "knob"), [
    ({"weighting": "x"}, "constant, gaussian"),
    ({"bad_weight": 1.0}, "bad_weight=1.0 with weighting=constant"),
    ({"bad_weight": 1.5}, "negatives.dbpm.bad_weight"),
    ({"threshold": -1.0}, "negatives.dbpm.threshold"),
    ({"warmup_epochs": 0}, "negatives.dbpm.warmup_epochs"),
    ({"within_epoch_warmup": 1.0}, "negatives.dbpm.within_epoch_warmup"),
    ({"min_pairs": 1}, "negatives.dbpm.min_pairs")])
def test_rejects_bad_knobs(kw, knob):
    with pytest.raises(ConfigError, match=knob):
        DynamicBadPairMining(**kw)
