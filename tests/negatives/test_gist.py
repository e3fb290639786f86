"""gist: masks exactly what the guide scores at/above the positive (brute force); duplicates of
the positive are never negatives."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from hnm.encoders.embed import embed_fn
from hnm.errors import ConfigError
from hnm.negatives.gist import NO_GUIDE, GISTFilter

QUERIES = ["sort a list of numbers", "read a file from disk", "open a socket connection",
           "format a date as text", "parse an http header", "close the file handle"]
DOCS = ["def sort(xs): return sorted(xs)", "open(path).read()", "socket.create_connection(a)",
        "d.strftime('%Y')", "headers = parse(raw)", "fh.close()",
        "list.sort(key=f)", "pathlib.Path(p).read_bytes()", "ssl.wrap_socket(s)",
        "time.strptime(s, fmt)", "json.loads(body)", "os.remove(path)"]


@pytest.fixture(scope="module")
def guide(tiny_model):
    return copy.deepcopy(tiny_model)


def planted_ctx(ctx_factory):
    texts = list(DOCS)
    texts[9] = DOCS[2]                 # an explicit negative that is q2's positive, another id
    ids = [f"d{j}" for j in range(12)]
    ids[9] = "dup-of-d2"
    return ctx_factory(b=6, k=1, doc_ids=ids, doc_texts=texts, queries=list(QUERIES))


def brute_force(guide, ctx, margin, strategy):
    """One text at a time through the guide; mask[i, j] = g_ij >= threshold_i (j != label)."""
    f = embed_fn(guide, batch_size=1, progress=False)
    q = np.stack([f([t])[0] for t in ctx.queries])
    d = np.stack([f([t])[0] for t in ctx.doc_texts])
    g = q @ d.T
    mask = np.zeros_like(g, dtype=bool)
    close = np.zeros_like(g, dtype=bool)
    for i in range(g.shape[0]):
        pos = g[i, i]
        thr = pos - margin if strategy == "absolute" else pos - abs(pos) * margin
        for j in range(g.shape[1]):
            if j != i:
                mask[i, j] = g[i, j] >= thr
                close[i, j] = abs(g[i, j] - thr) < 1e-5 and ctx.doc_texts[j] != ctx.doc_texts[i]
    return torch.from_numpy(mask), torch.from_numpy(close)


@pytest.mark.parametrize(("margin", "strategy"),
                         [(0.0, "absolute"), (0.002, "absolute"), (0.05, "absolute"),
                          (0.0, "relative"), (0.003, "relative")])
def test_masks_exactly_what_the_guide_ranks_above_the_positive(guide, ctx_factory, margin,
                                                               strategy):
    ctx = planted_ctx(ctx_factory)
    ref, close = brute_force(guide, ctx, margin, strategy)
    out = GISTFilter(guide, margin=margin, margin_strategy=strategy)(ctx)
    keep = ~close                          # float ties at the threshold may go either way
    assert torch.equal(out.mask[keep], ref[keep])
    assert not out.mask.diagonal().any()   # the label is never masked
    assert out.logs["gist_masked_frac"] == pytest.approx(float(ref.sum()) / (6 * 11), abs=0.05)


@pytest.mark.parametrize("strategy", ["absolute", "relative"])
def test_planted_duplicate_of_the_positive_is_never_a_negative(guide, ctx_factory, strategy):
    ctx = GISTFilter(guide, margin=0.0, margin_strategy=strategy)(planted_ctx(ctx_factory))
    assert ctx.mask[2, 9]                  # same text as q2's positive: masked
    assert ctx.negative_mask()[2, 9].item() is False


def test_keeps_earlier_masks_and_skips_textless_candidates(guide, ctx_factory):
    ctx = planted_ctx(ctx_factory)
    ctx.mask[0, 11] = True
    ctx.add_candidates(torch.zeros(2, ctx.d.shape[1]))          # no texts: cannot be judged
    out = GISTFilter(guide, margin=0.0)(ctx)
    assert out.mask[0, 11]
    assert not out.mask[:, -2:].any()


def test_guide_is_frozen_and_listed_for_eval_mode(guide):
    gist = GISTFilter(guide)
    assert not any(p.requires_grad for p in guide.parameters())
    assert any(m is guide for m in gist.frozen_models())


def test_under_bf16_autocast_guide_scores_stay_float32(guide, ctx_factory):
    """trainer=gpu/ddp train in bf16-mixed: the guide's scores are a float32 product (a bf16
    matmul would round them coarser than the margins GIST compares them against)."""
    ctx = planted_ctx(ctx_factory)
    gist = GISTFilter(guide, margin=0.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g, _ = gist.guide_scores(ctx)
        q, d = gist.embed(ctx.queries, g.device), gist.embed(ctx.doc_texts, g.device)
        out = gist(ctx)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, q.float() @ d.float().T, rtol=0, atol=1e-6)
    assert out.mask[2, 9] and not out.mask.diagonal().any()


def test_guide_scores_are_float32_outside_autocast(guide, ctx_factory):
    """Under bf16 autocast the guide's scores equal the float32 ones: a bf16 guide would round
    cosines to ~3 digits and decide ties with the positive by rounding."""
    ref, _ = GISTFilter(guide).guide_scores(planted_ctx(ctx_factory))
    ref_mask = GISTFilter(guide)(planted_ctx(ctx_factory)).mask
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, _ = GISTFilter(guide).guide_scores(planted_ctx(ctx_factory))
        got_mask = GISTFilter(guide)(planted_ctx(ctx_factory)).mask
    assert got.dtype == torch.float32
    assert torch.equal(got, ref)
    assert torch.equal(got_mask, ref_mask)


def test_effect_counts_what_it_newly_masked(guide, ctx_factory):
    gist = GISTFilter(guide, margin=0.0)
    assert gist.effect() == {"candidates_masked": 0.0}
    ctx = planted_ctx(ctx_factory)
    ctx.mask[2, 9] = True                       # already masked before gist: not gist's doing
    before = ctx.mask.clone()
    out = gist(ctx)
    added = int((out.mask & ~before).sum())
    assert added >= 1 and gist.effect()["candidates_masked"] == added
    gist(planted_ctx(ctx_factory))               # cumulative over batches
    assert gist.effect()["candidates_masked"] == added + int(
        GISTFilter(guide)(planted_ctx(ctx_factory)).mask.sum())


@pytest.mark.parametrize(("kw", "knob"), [({"margin_strategy": "percent"}, "absolute, relative"),
                                          ({"margin": -0.1}, "negatives.gist.margin"),
                                          ({"batch_size": 0}, "negatives.gist.batch_size")])
def test_rejects_bad_knobs(guide, kw, knob):
    with pytest.raises(ConfigError, match=knob):
        GISTFilter(guide, **kw)


def test_no_guide_is_refused() -> None:
    """The starting model as its own guide ended below the baseline: a stronger guide is
    required, and the starting model is an explicit opt-in (``guide='${encoder}'``)."""
    with pytest.raises(ConfigError) as err:
        GISTFilter(None)
    assert str(err.value) == NO_GUIDE and "negatives.gist.guide='${encoder}'" in NO_GUIDE
