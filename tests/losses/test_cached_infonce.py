"""GradCache gives InfoNCE's loss and parameter gradients with a batch larger than its chunk."""

from __future__ import annotations

import pytest
import torch

from hnm.encoders import encode_with_grad, tiny_encoder
from hnm.errors import ConfigError
from hnm.losses.cached_infonce import CachedInfoNCELoss
from hnm.losses.infonce import InfoNCELoss
from hnm.types import ScoreContext
from tests.losses._ctx import make_ctx

QUERIES = [f"how to {v} item number {i}" for i, v in
           enumerate(["sort", "read", "parse", "open", "close", "send", "format", "join"] * 2)]
DOCS = [f"def f{i}(x): return {v}(x) + {i}" for i, v in
        enumerate(["sorted", "open", "json.loads", "socket", "close", "send", "str", "join"] * 2)]
NEGS = [f"class C{i}: pass  # unrelated {i}" for i in range(16)]


def _ctx(q: torch.Tensor, d: torch.Tensor) -> ScoreContext:
    b = q.shape[0]
    ids = [f"d{i}" for i in range(d.shape[0])]
    mask = torch.zeros(b, d.shape[0], dtype=torch.bool)
    mask[0, 3] = True  # masks and strategies apply to the full batch as usual
    return ScoreContext(
        q=q, d=d, doc_ids=ids, doc_texts=ids, qids=[f"q{i}" for i in range(b)],
        pos_ids=ids[:b], queries=[""] * b, pair_idx=torch.arange(b), labels=torch.arange(b),
        mask=mask, weights=torch.ones(b), num_negatives=1)


def _step(model, loss, encode) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    q = encode(model, QUERIES)
    d = encode(model, DOCS + NEGS)
    value = loss(_ctx(q, d))
    value.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return value.item(), grads


def _assert_same_grads(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """Equal to float rounding: sums over different chunkings differ in the last bits, so the
    absolute tolerance is relative to the largest gradient entry of the model."""
    assert got.keys() == want.keys() and len(want) > 10
    scale = max(float(g.abs().max()) for g in want.values())
    for name, g in want.items():
        torch.testing.assert_close(got[name], g, rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.fixture(scope="module")
def model():
    return tiny_encoder(seed=3)


@pytest.mark.parametrize(("chunk_size", "symmetric"), [(3, False), (5, True)])
def test_same_loss_and_gradients_as_infonce(model, chunk_size: int, symmetric: bool) -> None:
    model.eval()  # no dropout: the full-batch and chunked passes see the same network
    full_loss, full = _step(model, InfoNCELoss(0.05, symmetric=symmetric), encode_with_grad)
    cached = CachedInfoNCELoss(0.05, symmetric=symmetric, chunk_size=chunk_size)
    cached_loss, grads = _step(model, cached, cached.encode)
    assert len(QUERIES) > chunk_size
    assert cached_loss == pytest.approx(full_loss, rel=1e-5)
    _assert_same_grads(grads, full)
    model.train()


def test_dropout_masks_are_replayed(model) -> None:
    """In train mode, the backward re-encoding must reuse each chunk's dropout masks: compare
    with encoding the same chunks with a graph, from the same RNG state."""
    model.train()
    chunk = 4
    loss = InfoNCELoss(0.05)

    def chunked_with_graph(m, texts):
        return torch.cat([encode_with_grad(m, texts[i:i + chunk])
                          for i in range(0, len(texts), chunk)])

    torch.manual_seed(0)
    ref_loss, ref = _step(model, loss, chunked_with_graph)
    cached = CachedInfoNCELoss(0.05, chunk_size=chunk)
    torch.manual_seed(0)
    got_loss, got = _step(model, cached, cached.encode)
    assert got_loss == pytest.approx(ref_loss, rel=1e-5)
    _assert_same_grads(got, ref)
    # and dropout is really active (otherwise the test above proves nothing)
    torch.manual_seed(1)
    other_loss, _ = _step(model, loss, chunked_with_graph)
    assert other_loss != pytest.approx(ref_loss, rel=1e-6)


def test_no_graph_without_grad(model) -> None:
    with torch.no_grad():
        out = CachedInfoNCELoss(chunk_size=2).encode(model, QUERIES[:5])
    assert out.shape[0] == 5 and not out.requires_grad


def test_rejects_bad_chunk_size() -> None:
    with pytest.raises(ConfigError):
        CachedInfoNCELoss(chunk_size=0)


# -- GradCache under DDP -------------------------------------------------------------------------
def test_cached_infonce_refuses_multi_process_training(monkeypatch) -> None:
    import hnm.losses.cached_infonce as cached

    loss = CachedInfoNCELoss(chunk_size=2)
    monkeypatch.setattr(cached, "dist_world", lambda: (2, 0))
    with pytest.raises(ConfigError, match=r"loss=cached_infonce.*trainer=ddp.*loss=infonce"):
        loss(_small_ctx())
    with pytest.raises(ConfigError, match="loss=cached_infonce"):
        loss.encode(object(), ["a text"])  # type: ignore[arg-type]
    monkeypatch.setattr(cached, "dist_world", lambda: (1, 0))
    assert torch.isfinite(loss(_small_ctx()))


def _small_ctx() -> ScoreContext:
    return make_ctx(b=4, k=1, grad=True)
