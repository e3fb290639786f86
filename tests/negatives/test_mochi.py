"""mochi: mixes lie on the segment between the mixed embeddings and are normalised."""

from __future__ import annotations

import pytest
import torch

from hnm.errors import ConfigError
from hnm.negatives.mochi import EMPTY_SCORE, MoCHiMixing


def planted(ctx_factory, **kw):
    ctx = ctx_factory(b=4, k=3, dim=16, seed=1)
    ctx.mask[0, 5] = True               # a masked (false) negative must never be mixed in
    ctx.mask[1, 0] = True
    strat = MoCHiMixing(n_hard=4, n_mix=32, n_query_mix=16, beta_max=0.5, seed=3, **kw)
    return ctx, strat


def hard_sets(ctx, n_hard):
    """Brute force: per query, the ids of its n_hard highest-scored usable negatives."""
    s = ctx.q @ ctx.d.T
    out = []
    for i in range(ctx.batch_size):
        usable = [j for j in range(s.shape[1]) if j != i and not ctx.mask[i, j]]
        out.append(set(sorted(usable, key=lambda j: -s[i, j].item())[:n_hard]))
    return out


def on_segment(x, a, b):
    """x = s*a + t*b with s, t >= 0 (least squares, exact up to float error)."""
    coef = torch.linalg.lstsq(torch.stack([a, b], 1), x[:, None]).solution.flatten()
    resid = (torch.stack([a, b], 1) @ coef - x).norm()
    return bool((coef >= -1e-5).all() and resid < 1e-5), coef


def test_mixes_lie_on_segments_and_are_normalised(ctx_factory):
    ctx, strat = planted(ctx_factory)
    m = strat.synthesize(ctx.q, ctx.d, ctx.negative_mask(), strat.generator(0))
    assert m.emb.shape == (4, 48, 16)
    assert torch.allclose(m.emb.norm(dim=-1), torch.ones(4, 48), atol=1e-5)
    hard = hard_sets(ctx, 4)
    for i in range(4):
        for r in range(48):
            j2 = int(m.second[i, r])
            assert j2 in hard[i]
            c = float(m.coef[i, r])
            if r < 32:                                    # pair mix a*n_i + (1-a)*n_j
                j1 = int(m.first[i, r])
                assert j1 in hard[i] and 0.0 <= c <= 1.0
                raw = c * ctx.d[j1] + (1 - c) * ctx.d[j2]
                if j1 != j2:
                    ok, coef = on_segment(m.emb[i, r], ctx.d[j1], ctx.d[j2])
                    assert ok
                    assert float(coef[0] / coef.sum()) == pytest.approx(c, abs=1e-4)
            else:                                         # query mix b*q + (1-b)*n_j
                assert int(m.first[i, r]) == -1 and 0.0 <= c <= 0.5
                raw = c * ctx.q[i] + (1 - c) * ctx.d[j2]
                ok, coef = on_segment(m.emb[i, r], ctx.q[i], ctx.d[j2])
                assert ok and coef[1] >= coef[0]          # the negative dominates
            assert torch.allclose(m.emb[i, r], raw / raw.norm(), atol=1e-5)
    assert m.valid.all()


def test_extra_logits_are_query_dot_mix_with_gradient_into_the_query_only(ctx_factory):
    ctx, strat = planted(ctx_factory)
    ctx.q.requires_grad_(True)
    ctx.d.requires_grad_(True)
    mixes = strat.synthesize(ctx.q, ctx.d, ctx.negative_mask(), strat.generator(ctx.step))
    out = strat(ctx)
    (logits,) = out.extra_logits
    assert logits.shape == (4, 48)
    ref = torch.einsum("bd,bmd->bm", ctx.q.detach(), mixes.emb)
    assert torch.allclose(logits.detach(), ref, atol=1e-6)
    logits.sum().backward()
    assert ctx.q.grad is not None and ctx.d.grad is None
    assert {"mochi_mix_score", "mochi_query_mix_score", "mochi_hard_score"} <= set(out.logs)


def test_same_step_same_mixes_and_queries_without_negatives_get_no_mass(ctx_factory):
    ctx, strat = planted(ctx_factory)
    a = strat.synthesize(ctx.q, ctx.d, ctx.negative_mask(), strat.generator(5))
    b = strat.synthesize(ctx.q, ctx.d, ctx.negative_mask(), strat.generator(5))
    assert torch.equal(a.emb, b.emb)
    ctx.mask[2, :] = True
    out = strat(ctx)
    assert (out.extra_logits[0][2] == EMPTY_SCORE).all()
    assert (out.extra_logits[0][[0, 1, 3]] > EMPTY_SCORE).all()


def test_micro_batches_of_one_step_draw_their_own_mixes(ctx_factory):
    """Under gradient accumulation the micro-batches of an optimizer step share ``ctx.step``;
    each must still draw fresh mixing coefficients, and a rerun the same ones."""
    ctx, strat = planted(ctx_factory)
    first = strat(ctx_factory(b=4, k=3, dim=16, seed=1, step=7)).extra_logits[0]
    second = strat(ctx_factory(b=4, k=3, dim=16, seed=1, step=7)).extra_logits[0]
    assert not torch.equal(first, second)
    _, again = planted(ctx_factory)
    assert torch.equal(again(ctx_factory(b=4, k=3, dim=16, seed=1, step=7)).extra_logits[0],
                       first)


def test_float32_outside_autocast(ctx_factory):
    """Under bf16 autocast the mixed logits equal the float32 ones (and keep their gradient)."""
    ctx, strat = planted(ctx_factory)
    ref = strat(ctx).extra_logits[0]
    ctx, strat = planted(ctx_factory)
    ctx.q.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixes = strat.synthesize(ctx.q, ctx.d, ctx.negative_mask(), strat.generator(0))
        got = strat(ctx).extra_logits[0]
    assert mixes.emb.dtype == torch.float32 and got.dtype == torch.float32
    assert torch.equal(got, ref)
    got.sum().backward()
    assert ctx.q.grad is not None


def test_effect_counts_synthetic_negatives(ctx_factory):
    ctx, strat = planted(ctx_factory)
    assert strat.effect() == {"synthetic_negatives": 0.0}
    ctx.mask[2, :] = True                          # query 2 has no negative: no mixes count
    strat(ctx)
    assert strat.effect() == {"synthetic_negatives": 3 * 48.0}


@pytest.mark.parametrize(("kw", "knob"), [({"n_mix": 0, "n_query_mix": 0}, "n_query_mix=0"),
                                          ({"beta_max": 1.5}, "negatives.mochi.beta_max"),
                                          ({"n_hard": 0}, "negatives.mochi.n_hard"),
                                          ({"n_mix": -1}, "negatives.mochi.n_mix")])
def test_rejects_bad_knobs(kw, knob):
    with pytest.raises(ConfigError, match=knob):
        MoCHiMixing(**kw)


def test_the_default_mixes_pairs_of_negatives_only() -> None:
    """A query mix (``b·q + (1-b)·n``, ``b`` up to 0.5) scores near or above the positive: on
    stdlib_code's dev split one query mix per query cost 0.025 nDCG@10 and the old default
    (16, 16, 8) 0.048, while pair mixes alone (8, 4, 0) stayed level with the baseline. The
    default, in the class and in conf/, is MoCHi(8, 4, 0); query mixing is opt-in."""
    from omegaconf import OmegaConf

    from hnm.cli import config_dir

    conf = OmegaConf.load(f"{config_dir()}/negatives/mochi.yaml")
    assert (conf.n_hard, conf.n_mix, conf.n_query_mix) == (8, 4, 0)
    default = MoCHiMixing()
    assert (default.n_hard, default.n_mix, default.n_query_mix) == (8, 4, 0)
