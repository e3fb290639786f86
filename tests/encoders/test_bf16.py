"""encoder.inference=bf16 and auto: bf16 autocast for no-grad passes, float32 out.

Tests of bf16 numerics skip on a CPU without bf16 hardware (there torch emulates it: the same
rounding, but nothing hnm would choose); the choice itself (``auto``, the detection, the
fallback to float32) is tested everywhere by forcing the detection with ``HNM_BF16_HARDWARE``.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hnm import precision
from hnm.encoders import embed_fn, tiny_encoder
from hnm.encoders.inference import effective_backend, set_inference

TEXTS = ["def f(x): return x + 1", "sort a list", "", "open the file and read every line " * 9,
         "parse an http header", "sort a list"]
HARDWARE = precision.bf16_support("cpu")
needs_bf16 = pytest.mark.skipif(not HARDWARE.ok, reason=f"no bf16 hardware: {HARDWARE.what}")


@pytest.fixture()
def model():
    return tiny_encoder(seed=3, hidden_size=64, intermediate_size=128)


@pytest.fixture(autouse=True)
def fresh_messages(monkeypatch):
    monkeypatch.setattr(precision, "_SAID", set())  # each test sees its own "once"


def _embed(model, backend, texts=TEXTS, batch=2):
    return embed_fn(model, batch, progress=False, backend=backend)(texts)


@needs_bf16
def test_bf16_is_close_to_float32_and_float32_out(model):
    ref = _embed(model, "torch")
    out = _embed(model, "bf16")
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    cos = (out * ref).sum(1)
    assert cos.min() > 0.999, cos
    assert not np.array_equal(out, ref)  # really bf16


def test_bf16_pools_float32_token_embeddings(model):
    """Whatever the transformer's last op, pooling sums float32 token embeddings."""
    seen = []
    pooling = model[1]
    handle = pooling.register_forward_pre_hook(
        lambda m, args: seen.append(args[0]["token_embeddings"].dtype))
    try:
        _embed(model, "bf16", TEXTS[:2])
    finally:
        handle.remove()
    assert seen and set(seen) == {torch.float32}


def test_torch_backend_is_float32_inside_autocast(model):
    """A teacher's or guide's pass inside a bf16-mixed training step stays float32."""
    ref = _embed(model, "torch")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = _embed(model, "torch")
    np.testing.assert_array_equal(inside, ref)


@pytest.mark.parametrize("forced, expected", [("1", "bf16"), ("0", "torch")])
def test_auto_follows_the_hardware(model, monkeypatch, caplog, forced, expected):
    monkeypatch.setenv(precision.ENV, forced)
    set_inference(model, "auto")
    with caplog.at_level(logging.INFO, logger="hnm.precision"):
        assert effective_backend(model) == expected
        out = embed_fn(model, 2, progress=False)(TEXTS)  # the model's own choice
        embed_fn(model, 2, progress=False)(TEXTS)
    said = [r.getMessage() for r in caplog.records if "encoder.inference=auto" in r.getMessage()]
    assert len(said) == 1 and f": {expected} " in said[0]  # once per process
    np.testing.assert_array_equal(out, _embed(model, expected))


def test_explicit_bf16_without_hardware_warns_and_runs(model, monkeypatch, caplog):
    monkeypatch.setenv(precision.ENV, "0")
    with caplog.at_level(logging.WARNING, logger="hnm.precision"):
        set_inference(model, "bf16")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "encoder.inference=bf16" in warned[0].getMessage()
    assert "auto" in warned[0].getMessage() and "torch" in warned[0].getMessage()
    assert effective_backend(model) == "bf16"  # a condition of the experiment: kept
    out = embed_fn(model, 2, progress=False)(TEXTS[:2])
    assert out.dtype == np.float32


@pytest.mark.parametrize("flags, ok, amx", [
    ({"avx2", "avx512f", "avx512_bf16"}, True, False),
    ({"avx512_bf16", "amx_bf16", "amx_tile"}, True, True),
    ({"avx2", "avx512f"}, False, False),
])
def test_cpu_detection_reads_the_flags(monkeypatch, flags, ok, amx):
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision, "_cpuinfo", lambda: ("Some CPU", flags))
    support = precision.bf16_support("cpu")
    assert support.ok is ok
    assert support.what.startswith("Some CPU")
    assert ("no AMX" in support.what) is (ok and not amx)


def test_the_override_wins_over_detection(monkeypatch):
    monkeypatch.setattr(precision, "_cpuinfo", lambda: ("Some CPU", {"avx512_bf16"}))
    monkeypatch.setenv(precision.ENV, "0")
    assert not precision.bf16_support("cpu").ok
    monkeypatch.setattr(precision, "_cpuinfo", lambda: ("Some CPU", {"avx2"}))
    monkeypatch.setenv(precision.ENV, "1")
    assert precision.bf16_support("cpu").ok
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    assert precision.resolve_precision("16-mixed", "cpu") == "16-mixed"
