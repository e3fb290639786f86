"""prebatch: the buffer holds the positives of the last k batches; known positives are masked."""

from __future__ import annotations

import pytest
import torch

from hnm.errors import ConfigError
from hnm.negatives.prebatch import PreBatchNegatives


def batch(ctx_factory, tag: str, seed: int, b: int = 3):
    ids = [f"{tag}{j}" for j in range(2 * b)]
    return ctx_factory(b=b, k=1, dim=8, seed=seed, doc_ids=ids)


def test_buffer_keeps_the_last_k_batches(ctx_factory):
    pre = PreBatchNegatives(k=2)
    first = pre(batch(ctx_factory, "a", 0))
    assert first.d.shape[0] == 6 and first.logs["prebatch_size"] == 0.0
    second = pre(batch(ctx_factory, "b", 1))
    assert second.doc_ids[6:] == ["a0", "a1", "a2"]
    assert torch.equal(second.d[6:], first.d[:3])
    pre(batch(ctx_factory, "c", 2))
    fourth = pre(batch(ctx_factory, "d", 3))
    assert fourth.doc_ids[6:] == ["b0", "b1", "b2", "c0", "c1", "c2"]   # "a" has fallen out
    assert fourth.logs["prebatch_size"] == 6.0
    emb, ids, _ = pre.candidates()
    assert ids == ["c0", "c1", "c2", "d0", "d1", "d2"] and not emb.requires_grad


def test_entries_equal_to_a_current_positive_are_masked(ctx_factory):
    pre = PreBatchNegatives(k=1)
    pre(batch(ctx_factory, "a", 0))
    cur = ctx_factory(b=3, k=1, dim=8, seed=1, doc_ids=["x0", "a2", "x2", "x3", "x4", "x5"],
                      positives={"q0": {"x0", "a0"}, "q1": {"a2"}, "q2": {"x2"}})
    out = pre(cur)
    assert out.doc_ids[6:] == ["a0", "a1", "a2"]
    expected = torch.zeros(3, 3, dtype=torch.bool)
    expected[0, 0] = True          # a0 is another known positive of q0
    expected[1, 2] = True          # a2 is q1's own positive
    assert torch.equal(out.mask[:, 6:], expected)
    assert out.logs["prebatch_masked"] == 2.0


def test_gradients_do_not_flow_into_old_batches(ctx_factory):
    pre = PreBatchNegatives(k=1)
    old = batch(ctx_factory, "a", 0)
    old.d.requires_grad_(True)
    pre(old)
    out = pre(batch(ctx_factory, "b", 1))
    assert not out.d[6:].requires_grad


def test_state_survives_a_checkpoint(ctx_factory):
    pre = PreBatchNegatives(k=2)
    pre(batch(ctx_factory, "a", 0))
    fresh = PreBatchNegatives(k=2)
    fresh.load_state_dict(pre.state_dict())
    assert fresh.candidates()[1] == ["a0", "a1", "a2"]


def test_effect_counts_added_columns_and_masks(ctx_factory):
    pre = PreBatchNegatives(k=1)
    pre(batch(ctx_factory, "a", 0))
    assert pre.effect() == {"candidates_added": 0.0, "candidates_masked": 0.0}
    pre(ctx_factory(b=3, k=1, dim=8, seed=1, doc_ids=["x0", "a2", "x2", "x3", "x4", "x5"],
                    positives={"q0": {"x0", "a0"}, "q1": {"a2"}, "q2": {"x2"}}))
    assert pre.effect() == {"candidates_added": 3.0, "candidates_masked": 2.0}


def test_refuses_a_run_too_short_to_use_the_buffer():
    pre = PreBatchNegatives()
    pre.check_schedule(1, 2)
    with pytest.raises(ConfigError, match="negatives.prebatch.*trainer.max_steps"):
        pre.check_schedule(1, 1)


def test_rejects_bad_k():
    with pytest.raises(ConfigError, match="negatives.prebatch.k"):
        PreBatchNegatives(k=0)
