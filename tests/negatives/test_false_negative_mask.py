"""false_negative_mask: planted duplicates (same id, same text) are masked, nothing else."""

from __future__ import annotations

import pytest
import torch

from hnm.negatives.false_negative_mask import (
    FalseNegativeMask,
    known_positive_columns,
    normalize_text,
)


def planted(ctx_factory):
    # 4 queries, positives d0..d3 (columns 0..3), explicit negatives at columns 4..7
    ids = ["d0", "d1", "d2", "d3", "n4", "d1", "x6", "d7"]
    texts = [f"document number {j}" for j in range(8)]
    texts[6] = "  Document   NUMBER 2 "          # same text as q2's positive, another id
    positives = {"q0": {"d0"}, "q1": {"d1"}, "q2": {"d2"}, "q3": {"d3", "d7"}}
    return ctx_factory(b=4, k=1, doc_ids=ids, doc_texts=texts, positives=positives)


def expected(*cells):
    out = torch.zeros(4, 8, dtype=torch.bool)
    for i, j in cells:
        out[i, j] = True
    return out


def test_masks_exactly_the_planted_duplicates(ctx_factory):
    ctx = FalseNegativeMask()(planted(ctx_factory))
    # (1, 5): id d1 again; (2, 6): q2's positive text; (3, 7): another known positive of q3
    assert torch.equal(ctx.mask, expected((1, 5), (2, 6), (3, 7)))
    assert ctx.logs["fnm_text_dups"] == 1.0
    assert ctx.logs["fnm_masked_frac"] == pytest.approx(3 / (4 * 7))


def test_text_match_respects_normalisation_knobs(ctx_factory):
    ctx = FalseNegativeMask(lowercase=False)(planted(ctx_factory))
    assert torch.equal(ctx.mask, expected((1, 5), (3, 7)))
    ctx = FalseNegativeMask(match_text=False)(planted(ctx_factory))
    assert torch.equal(ctx.mask, expected((1, 5), (3, 7)))
    ctx = FalseNegativeMask(match_ids=False)(planted(ctx_factory))
    assert torch.equal(ctx.mask, expected((2, 6)))


def test_text_of_other_known_positives_counts(ctx_factory):
    ctx = planted(ctx_factory)
    ctx.doc_texts[4] = ctx.doc_texts[7]            # n4 has the text of q3's second positive d7
    ctx = FalseNegativeMask()(ctx)
    assert ctx.mask[3, 4] and not ctx.mask[[0, 1, 2], 4].any()


def test_label_never_masked_and_empty_texts_never_match(ctx_factory):
    ctx = planted(ctx_factory)
    ctx.doc_texts = ["" for _ in ctx.doc_texts]
    ctx = FalseNegativeMask(match_ids=False)(ctx)
    assert not ctx.mask.any()
    ctx = FalseNegativeMask()(planted(ctx_factory))
    assert not ctx.mask.diagonal().any()


def test_known_positive_columns_from_start(ctx_factory):
    ctx = planted(ctx_factory)
    assert torch.equal(known_positive_columns(ctx), expected((1, 5), (3, 7)))
    assert torch.equal(known_positive_columns(ctx, start=6), expected((3, 7)))
    assert not known_positive_columns(ctx, start=8).any()


def test_normalize_text():
    assert normalize_text("  A\tb\n C ") == "a b c"
    assert normalize_text(" A  B ", whitespace=False) == " a  b "
    assert normalize_text(" A  B ", lowercase=False) == "A B"


def test_effect_counts_what_it_newly_masked(ctx_factory):
    fnm = FalseNegativeMask()
    assert fnm.effect() == {"candidates_masked": 0.0, "text_duplicates": 0.0}
    ctx = planted(ctx_factory)
    ctx.mask[1, 5] = True                       # the module's known-positive mask got this one
    fnm(ctx)
    assert fnm.effect() == {"candidates_masked": 2.0, "text_duplicates": 1.0}
    fnm(planted(ctx_factory))                   # cumulative over batches
    assert fnm.effect() == {"candidates_masked": 5.0, "text_duplicates": 2.0}


def test_refuses_matching_nothing():
    from hnm.errors import ConfigError

    with pytest.raises(ConfigError, match="match_ids=false and .*match_text=false"):
        FalseNegativeMask(match_ids=False, match_text=False)
