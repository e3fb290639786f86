"""queue: FIFO with the configured size; the momentum update is θk <- m θk + (1-m) θq."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from hnm.encoders.embed import encode_with_grad
from hnm.errors import ConfigError
from hnm.negatives.queue import MomentumQueue


@pytest.fixture()
def online(tiny_model):
    return copy.deepcopy(tiny_model)


def batch(tag: str, n: int, dim: int = 4):
    emb = torch.arange(n * dim, dtype=torch.float32).reshape(n, dim) + (100.0 * ord(tag[0]))
    return emb, [f"{tag}{i}" for i in range(n)], [f"text {tag}{i}" for i in range(n)]


def test_fifo_keeps_the_newest_size_entries_in_order():
    q = MomentumQueue(size=5)
    a, b, c = batch("a", 3), batch("b", 3), batch("c", 7)
    q.enqueue(*a)
    assert q.ids == ["a0", "a1", "a2"] and len(q) == 3
    q.enqueue(*b)                                     # a0 is the oldest: dropped first
    assert q.ids == ["a1", "a2", "b0", "b1", "b2"]
    assert q.texts == ["text a1", "text a2", "text b0", "text b1", "text b2"]
    assert torch.equal(q.emb, torch.cat([a[0][1:], b[0]]))
    q.enqueue(*c)                                     # a batch larger than the queue
    assert q.ids == ["c2", "c3", "c4", "c5", "c6"] and torch.equal(q.emb, c[0][2:])


def test_momentum_update_formula(online):
    q = MomentumQueue(size=8, momentum=0.9)
    q.momentum_update(online)                        # first call: θk = θq (a copy)
    key = q.key_encoder
    assert key is not online
    for pk, pq in zip(key.parameters(), online.parameters()):
        assert torch.equal(pk, pq) and not pk.requires_grad
    old_key = [p.detach().clone() for p in key.parameters()]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():                            # an "optimizer step" of the online model
        for p in online.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    q.momentum_update(online)
    for pk, old, pq in zip(key.parameters(), old_key, online.parameters()):
        assert torch.allclose(pk, 0.9 * old + 0.1 * pq, atol=1e-6)


def test_step_enqueues_positives_from_the_key_encoder_and_masks_known_positives(
        online, ctx_factory):
    q = MomentumQueue(size=16, momentum=0.5)
    module = SimpleNamespace(encoder=online, doc_encoder=None)
    ctx = q(ctx_factory(b=3, k=1, dim=32))
    assert ctx.logs["queue_fill"] == 0.0 and ctx.d.shape[0] == 6    # empty: nothing added
    q.on_step_end(module, ctx)
    assert q.ids == ["d0", "d1", "d2"]
    with torch.no_grad():
        q.key_encoder.eval()
        ref = F.normalize(encode_with_grad(q.key_encoder, ctx.doc_texts[:3]), dim=-1)
    assert torch.allclose(q.emb, ref, atol=1e-5)

    # next batch: query 0's positive is d1 (in the queue) -> masked for query 0 only
    nxt = ctx_factory(b=3, k=1, dim=32, doc_ids=["d1", "e1", "e2", "e3", "e4", "e5"])
    out = q(nxt)
    assert out.d.shape[0] == 9 and out.doc_ids[6:] == ["d0", "d1", "d2"]
    assert out.mask[0, 7] and out.mask[:, 6:].sum() == 1
    assert out.logs["queue_fill"] == pytest.approx(3 / 16) and out.logs["queue_masked"] == 1.0
    q.on_step_end(module, out)
    assert q.ids == ["d0", "d1", "d2", "d1", "e1", "e2"]


def test_state_survives_a_checkpoint(online, ctx_factory):
    q = MomentumQueue(size=4, momentum=0.5)
    ctx = q(ctx_factory(b=2, k=0, dim=32))
    q.on_step_end(SimpleNamespace(encoder=online, doc_encoder=None), ctx)
    state = q.state_dict()
    fresh = MomentumQueue(size=4, momentum=0.5)
    key = fresh.models(online, None)["queue_key_encoder"]  # the training module registers it
    key.load_state_dict(q.key_encoder.state_dict())        # and Lightning restores its weights
    fresh.load_state_dict(state)
    assert fresh.ids == q.ids and torch.equal(fresh.emb, q.emb)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    fresh.momentum_update(online)                    # restored key weights, then updated
    for pk, pold, pq in zip(fresh.key_encoder.parameters(), q.key_encoder.parameters(),
                            online.parameters()):
        assert torch.allclose(pk, 0.5 * pold + 0.5 * pq, atol=1e-6)
    assert not any(p.requires_grad for p in key.parameters())  # the key is not optimised


def test_effect_counts_queue_columns_and_masks(online, ctx_factory):
    q = MomentumQueue(size=16, momentum=0.5)
    module = SimpleNamespace(encoder=online, doc_encoder=None)
    ctx = q(ctx_factory(b=3, k=1, dim=32))
    q.on_step_end(module, ctx)
    assert q.effect() == {"candidates_added": 0.0, "candidates_masked": 0.0}   # empty queue
    q(ctx_factory(b=3, k=1, dim=32, doc_ids=["d1", "e1", "e2", "e3", "e4", "e5"]))
    assert q.effect() == {"candidates_added": 3.0, "candidates_masked": 1.0}


def test_refuses_a_run_too_short_to_use_the_queue():
    q = MomentumQueue()
    q.check_schedule(1, 2)
    with pytest.raises(ConfigError, match="negatives.queue.*trainer.max_steps"):
        q.check_schedule(1, 1)


@pytest.mark.parametrize(("kw", "knob"), [({"size": 0}, "negatives.queue.size"),
                                          ({"momentum": 1.5}, "negatives.queue.momentum"),
                                          ({"encode_batch_size": 0},
                                           "negatives.queue.encode_batch_size")])
def test_rejects_bad_knobs(kw, knob):
    with pytest.raises(ConfigError, match=knob):
        MomentumQueue(**kw)
