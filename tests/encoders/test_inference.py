"""encoder.inference: every no-grad backend against torch fp32 on the tiny encoder."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hnm.encoders import embed_fn, tiny_encoder
from hnm.encoders.inference import BACKENDS, set_inference
from hnm.errors import ConfigError

TEXTS = ["def f(x): return x + 1", "sort a list", "", "open the file and read every line " * 9,
         "parse an http header", "sort a list"]

try:
    import onnxruntime  # noqa: F401
    HAVE_ONNX = True
except ImportError:  # pragma: no cover - the optional extra
    HAVE_ONNX = False
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="onnxruntime not installed (hnm[onnx])")


@pytest.fixture()
def model():
    return tiny_encoder(seed=3)


def _torch(model, texts=TEXTS, batch=2):
    return embed_fn(model, batch, progress=False, backend="torch")(texts)


@needs_onnx
def test_onnx_equals_torch_fp32_in_input_order(model):
    ref = _torch(model)
    out = embed_fn(model, 2, progress=False, backend="onnx")(TEXTS)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_array_equal(out[1], out[5])  # the same text, in other batches
    assert embed_fn(model, 2, backend="onnx")([]).shape == (0, ref.shape[1])


@needs_onnx
def test_onnx_follows_weight_updates(model):
    f = embed_fn(model, 4, progress=False, backend="onnx")
    before = f(TEXTS)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # an in-place update, as an optimizer step makes
    after = f(TEXTS)
    assert not np.allclose(before, after, atol=1e-4)
    np.testing.assert_allclose(after, _torch(model), atol=1e-5)


@pytest.mark.parametrize("backend", ["int8", pytest.param("onnx_int8", marks=needs_onnx)])
def test_int8_is_close_and_normalised(model, backend):
    ref = _torch(model)
    out = embed_fn(model, 4, progress=False, backend=backend)(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    cos = (out * ref).sum(1)
    assert cos.min() > 0.9, cos
    assert not np.array_equal(out, ref)  # really quantised


def test_training_mode_and_weights_are_untouched(model):
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    embed_fn(model, 4, progress=False, backend="int8")(TEXTS)
    assert all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(not isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())


@needs_onnx
def test_the_model_knob_reaches_embed_fn():
    model = tiny_encoder(seed=3, inference="onnx")
    out = embed_fn(model, 2, progress=False)(TEXTS)  # no backend given: the model's
    np.testing.assert_allclose(out, _torch(model), atol=1e-5)


def test_unknown_backend_is_refused():
    with pytest.raises(ConfigError,
                       match="encoder.inference='tensorrt'.*torch, bf16, auto, onnx, int8"):
        tiny_encoder(inference="tensorrt")
    assert set(BACKENDS) == {"torch", "bf16", "auto", "onnx", "int8", "onnx_int8"}


def test_onnx_without_onnxruntime_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(ConfigError, match="hnm\\[onnx\\]"):
        set_inference(None, "onnx")


def test_config_refusal_through_hydra():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from hnm.cli import config_dir
    from hnm.entry import user_message

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "encoder.inference=fp16"])
    with pytest.raises(Exception) as info:  # Hydra wraps it; the CLI prints the ConfigError
        instantiate(cfg.encoder)
    assert "encoder.inference='fp16'" in (user_message(info.value) or "")
