"""No-gradient inference backends for evaluation, mining and refreshes (training keeps torch).

``encoder.inference`` chooses how a model's frozen passes run:

- ``torch`` (default): ``SentenceTransformer.encode`` — torch eager in float32, texts sorted
  by length and padded per batch; autocast is switched off for the pass, so it is float32 even
  when called inside a mixed-precision training step (a teacher's or guide's pass).
- ``bf16``: the same, with the transformer under ``torch.autocast(dtype=torch.bfloat16)`` on
  the model's device (CPU or CUDA); its token embeddings are cast back to float32 before
  pooling, so pooling, normalisation and the returned embedding are float32. Worth it where
  the device multiplies bf16 in hardware (AMX or AVX512-BF16 CPUs, Ampere+ GPUs): there it is
  1.5–3× faster, with embeddings within ~1e-4 cosine of float32's (``scripts/bench_encoders.py``).
- ``auto``: ``bf16`` where the model's device has bf16 hardware, ``torch`` elsewhere
  (:mod:`hnm.precision`; ``hnm train`` resolves it before the run and records the choice).
- ``onnx``: the model's whole pipeline (transformer, pooling, normalisation) exported locally
  with ``torch.onnx.export`` and run by ONNX Runtime (``pip install 'hnm[onnx]'``). fp32, the
  same tokenizer and the same length-sorted batches; embeddings equal torch's to ~1e-6.
- ``int8``: torch dynamic quantisation of every ``nn.Linear`` to int8
  (``torch.ao.quantization.quantize_dynamic``); approximate, opt-in.
- ``onnx_int8``: the ONNX export with its weights quantised to int8 by ONNX Runtime's
  ``quantize_dynamic``; approximate, opt-in.

The exported or quantised copy is rebuilt whenever the weights change (the in-place update
counters of the parameters are compared on every call), so refreshes in the middle of
training see the current weights. sentence-transformers' own ``backend="onnx"`` needs
``optimum-onnx``, which pins ``transformers<4.58``; this export needs only ``onnx`` and
``onnxruntime``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from hnm.encoders.clip import clip_for
from hnm.errors import ConfigError, check_choice
from hnm.logging_setup import verbose

BACKENDS = ("torch", "bf16", "auto", "onnx", "int8", "onnx_int8")
ATTR = "hnm_inference"


def set_inference(model: Any, backend: str, key: str = "encoder.inference") -> Any:
    """Record the no-grad backend on a model (read by :func:`hnm.encoders.embed.embed_fn`).

    Refuses an unknown backend, and ``onnx*`` when ONNX Runtime is not installed; warns (once)
    about ``bf16`` on a device without bf16 hardware; with ``model=None`` it only checks.
    """
    check_choice(key, backend, BACKENDS)
    if backend.startswith("onnx"):
        require_onnx(key)
    if model is not None:
        if backend == "bf16":
            from hnm.precision import resolve_inference

            resolve_inference(backend, _device_of(model), key)
        setattr(model, ATTR, backend)
    return model


def inference_of(model: Any) -> str:
    return getattr(model, ATTR, "torch")


def effective_backend(model: Any, backend: str | None = None) -> str:
    """The backend a pass of ``model`` runs now: ``backend`` or the model's own choice, with
    ``auto`` resolved for the device the model is on."""
    name = backend or inference_of(model)
    if name != "auto":
        return name
    from hnm.precision import resolve_inference

    return resolve_inference(name, _device_of(model))


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def require_onnx(key: str = "encoder.inference") -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"{key}=onnx needs the packages 'onnx' and 'onnxruntime' (pip install 'hnm[onnx]'); "
            f"or set {key}=torch"
        ) from err


def weights_version(model: torch.nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or updated in place."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


class _Pipeline(torch.nn.Module):
    """A SentenceTransformer as a function of its tensor inputs (for the ONNX export)."""

    def __init__(self, model: torch.nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors)))["sentence_embedding"]


_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def backend_for(model: Any, backend: str | None = None) -> Backend:
    """The model's :class:`Backend` (shared by every embedding function of that model)."""
    name = backend or inference_of(model)
    per_model = _BACKENDS.setdefault(model, {})
    if name not in per_model:
        per_model[name] = Backend(name)
    return per_model[name]


class Backend:
    """One model's frozen-weights encoder for a backend; rebuilt when the weights change.

    It keeps no reference to the model (it is stored per model in a weak dictionary).
    """

    def __init__(self, backend: str) -> None:
        check_choice("encoder.inference", backend, BACKENDS)
        self.backend = backend
        self._version: tuple | None = None
        self._impl: Any = None

    def encode(self, model: Any, texts: Sequence[str], batch_size: int,
               progress: bool = False, normalize: bool = True) -> np.ndarray:
        device = _device_of(model)
        name = effective_backend(model, self.backend)
        if name in ("torch", "bf16"):
            return _torch_encode(model, texts, batch_size, progress, normalize,
                                 bf16=name == "bf16", device=device)
        if device.type != "cpu":
            raise ConfigError(f"encoder.inference={self.backend} runs on the CPU only, and the "
                              f"model is on {device}; set encoder.inference=torch")
        version = weights_version(model)
        if self._impl is None or version != self._version:
            with torch.inference_mode(False), torch.no_grad():
                self._impl = self._build(model)
            self._version = version
        if self.backend == "int8":
            return _st_encode(self._impl, texts, batch_size, progress, normalize)
        return self._onnx_encode(model, texts, batch_size)

    def _build(self, model: Any) -> Any:
        if self.backend == "int8":
            q = copy.deepcopy(model).cpu().eval()
            return torch.ao.quantization.quantize_dynamic(q, {torch.nn.Linear}, dtype=torch.qint8)
        return _export_onnx(model, int8=self.backend == "onnx_int8")

    def _onnx_encode(self, model: Any, texts: Sequence[str], batch_size: int) -> np.ndarray:
        session, names = self._impl
        texts = clip_for(model, texts)
        if not texts:
            return np.zeros((0, model.get_embedding_dimension() or 0), np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as encode() sorts
        out: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            feats = model.tokenize([texts[i] for i in order[start:start + batch_size]])
            out.append(session.run(None, {n: feats[n].numpy() for n in names})[0])
        emb = np.empty((len(texts), out[0].shape[1]), np.float32)
        emb[order] = np.concatenate(out)
        return emb


def _st_encode(model: Any, texts: Sequence[str], batch_size: int, progress: bool,
               normalize: bool = True) -> np.ndarray:
    out = model.encode(clip_for(model, texts), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=normalize,
                       show_progress_bar=progress and len(texts) > batch_size and verbose())
    return np.ascontiguousarray(out, dtype=np.float32)


def _torch_encode(model: Any, texts: Sequence[str], batch_size: int, progress: bool,
                  normalize: bool, bf16: bool, device: torch.device) -> np.ndarray:
    """``torch`` (float32, autocast off) or ``bf16`` (the transformer under bf16 autocast, its
    outputs back in float32 before pooling) on the model's own device."""
    if device.type not in ("cpu", "cuda"):  # no autocast to set or clear there
        return _st_encode(model, texts, batch_size, progress, normalize)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), \
            _float32_outputs(model, bf16):
        return _st_encode(model, texts, batch_size, progress, normalize)


@contextlib.contextmanager
def _float32_outputs(model: Any, active: bool) -> Iterator[None]:
    """Inside the block, the tensors a transformer module returns are cast to float32 (on CPU
    and CUDA, BERT-style models already end in a float32 LayerNorm under autocast; this holds
    it for any architecture), so that pooling sums float32 token embeddings."""
    if not active:
        yield
        return

    def cast(module: Any, args: Any, output: Any) -> Any:
        if isinstance(output, dict):
            return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point()
                    else v for k, v in output.items()}
        return output

    heavy = [m for m in model.modules() if hasattr(m, "auto_model")] \
        if isinstance(model, torch.nn.Module) else []
    handles = [m.register_forward_hook(cast) for m in heavy]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _export_onnx(model: Any, int8: bool) -> tuple[Any, list[str]]:
    """Export the model's pipeline to a temporary file and open an ONNX Runtime session."""
    import warnings

    import onnxruntime as ort

    sample = model.tokenize(["an example text to trace the graph", "a second one"])
    names = [k for k, v in sample.items() if isinstance(v, torch.Tensor)]
    wrapped = _Pipeline(model, names).eval()
    with tempfile.TemporaryDirectory(prefix="hnm-onnx-") as folder:
        path = os.path.join(folder, "model.onnx")
        axes = {n: {0: "batch", 1: "length"} for n in names}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, tuple(sample[n].cpu() for n in names), path, dynamo=False,
                              input_names=names, output_names=["embedding"],
                              dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=17)
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = os.path.join(folder, "model.int8.onnx")
            quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
            path = qpath
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return session, names
