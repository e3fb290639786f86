"""What identifies an embedding: the model's weights fingerprint and every setting that shapes
its output (the *model key*), and each text's own key.

The weights fingerprint is a SHA-256 over every state-dict tensor's name, dtype, shape and raw
bytes: two models with the same weights share it whatever folder or seed they came from, and
any change to any weight changes it. It is computed once per model object and kept in a weak
per-object memo, together with each parameter's version counter (bumped by every in-place
change, optimizer steps included), so a later call costs one pass over ~100 counters; only
when a counter moved is the hash computed again. The hash reads each contiguous CPU tensor's
memory directly (no copy), in a thread pool (hashlib releases the GIL on large buffers), with
SHA-256, which uses the CPU's SHA extensions: about 0.1 s for MiniLM's 91 MB on an idle core.
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

FORMAT = "hnm-embeddings-v1"
_MEMO: weakref.WeakKeyDictionary[Any, tuple[tuple, str | None]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def _tensor_bytes(t: torch.Tensor) -> tuple[str, memoryview | bytes]:
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    extra = ""
    if t.is_quantized:  # int8 weights: their integers and their quantisation parameters
        if t.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            extra = (f"{t.q_per_channel_scales().tolist()}|"
                     f"{t.q_per_channel_zero_points().tolist()}|{t.q_per_channel_axis()}")
        else:
            extra = f"{t.q_scale()}|{t.q_zero_point()}"
        t = t.int_repr()
    t = t.contiguous()
    data = t.view(-1).view(torch.uint8).numpy().data if t.numel() else b""
    return f"{t.dtype}|{tuple(t.shape)}|{extra}|", data


def _tensor_digest(item: tuple[str, Any]) -> tuple[bytes, int]:
    """SHA-256 of one state-dict entry and how many tensor bytes it covered (packed
    parameters of quantised modules are tuples of tensors)."""
    name, value = item
    h = hashlib.sha256(f"{name}|".encode())
    covered = 0
    parts = value if isinstance(value, (tuple, list)) else (value,)
    for v in parts:
        if isinstance(v, torch.Tensor):
            head, data = _tensor_bytes(v)
            h.update(head.encode())
            h.update(data)
            covered += len(data)
        else:
            h.update(repr(v).encode())
    return h.digest(), covered


def versions(model: torch.nn.Module) -> tuple:
    """A cheap snapshot that changes whenever a parameter or buffer is changed in place,
    replaced or moved (identity, storage address and autograd version counter of each)."""
    out = []
    for t in (*model.parameters(), *model.buffers()):
        out.append((id(t), t.data_ptr(), t._version))
    return tuple(out)


def weights_fingerprint(model: torch.nn.Module) -> str | None:
    """SHA-256 (hex) of the model's state dict, recomputed only when a weight changed; None
    when the state dict holds no tensor bytes (nothing identifies the model)."""
    snap = versions(model)
    with _LOCK:
        memo = _MEMO.get(model)
    if memo is not None and memo[0] == snap:
        return memo[1]
    items = list(model.state_dict().items())
    with ThreadPoolExecutor(max_workers=2) as pool:
        digests = list(pool.map(_tensor_digest, items))
    # no weight bytes at all (e.g. an ONNX Runtime backend: the weights live in its session):
    # nothing identifies the model, so it is not cached
    h = (hashlib.sha256(b"".join(d for d, _ in digests)).hexdigest()
         if sum(n for _, n in digests) else None)
    with _LOCK:
        _MEMO[model] = (snap, h)
    return h


_TOK_MEMO: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _tokenizer_digest(model: Any) -> str:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return "none"
    try:
        return _TOK_MEMO[tok]
    except (KeyError, TypeError):
        pass
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        # without the padding and truncation of its last call, which the serialisation
        # carries (the key holds max_seq_length itself)
        spec = json.loads(backend.to_str())
        spec.pop("padding", None)
        spec.pop("truncation", None)
        text = json.dumps(spec, sort_keys=True)
    else:  # a slow tokenizer: its vocabulary and class
        text = json.dumps(sorted(tok.get_vocab().items()))
    digest = hashlib.sha256(f"{type(tok).__name__}|{text}".encode()).hexdigest()
    try:
        _TOK_MEMO[tok] = digest
    except TypeError:  # not weak-referenceable: computed each time
        pass
    return digest


def _module_configs(model: Any) -> list[Any]:
    """Each submodule's class and configuration (pooling mode, normalisation, dense layers,
    the transformer's architecture and attention implementation); weights excluded."""
    out: list[Any] = []
    children = model.children() if isinstance(model, torch.nn.Module) else []
    for m in children:
        conf: dict[str, Any] = {}
        get = getattr(m, "get_config_dict", None)
        if callable(get):
            conf.update(get())
        auto = getattr(m, "auto_model", None)
        if auto is not None and getattr(auto, "config", None) is not None:
            c = auto.config.to_dict()
            for k in ("_name_or_path", "transformers_version", "name_or_path"):
                c.pop(k, None)
            c["attn_implementation"] = getattr(auto.config, "_attn_implementation", None)
            conf["auto_config"] = c
        out.append([f"{type(m).__module__}.{type(m).__qualname__}", conf])
    return out


def _autocast(device: str) -> str | None:
    """The autocast dtype in force for ``device`` (a bf16 pass must not serve an fp32 one)."""
    try:
        if torch.is_autocast_enabled(device):
            return str(torch.get_autocast_dtype(device))
    except (RuntimeError, TypeError):  # a device type without autocast
        pass
    return None


def model_key(model: Any, **settings: Any) -> tuple[str | None, dict[str, Any]]:
    """``(key, parts)``: the hex key of everything that shapes ``model``'s embeddings, and the
    parts it was made from (for ``hnm cache info``); key None when the model's weights cannot
    be fingerprinted (then it is never cached).

    The parts: the weights fingerprint, the tokenizer, each submodule's class and config
    (pooling and normalisation among them), ``max_seq_length``, the default prompt, the
    device type, parameter dtype and autocast dtype, the torch and sentence-transformers versions, and the
    caller's ``settings`` (e.g. ``normalize=True``, a prompt, a backend). Not in the key: the
    folder the model came from, the batch size."""
    import sentence_transformers

    prompt_name = getattr(model, "default_prompt_name", None)
    prompts = getattr(model, "prompts", None) or {}
    try:
        param = next(iter(model.parameters()))
        device, dtype = param.device.type, str(param.dtype)
    except StopIteration:
        device, dtype = "cpu", "none"
    parts = {
        "format": FORMAT,
        "weights": weights_fingerprint(model),
        "tokenizer": _tokenizer_digest(model),
        "modules": _module_configs(model),
        "max_seq_length": getattr(model, "max_seq_length", None),
        "prompt": [prompt_name, prompts.get(prompt_name) if prompt_name else None],
        "device": device, "dtype": dtype, "autocast": _autocast(device),
        "versions": [torch.__version__, sentence_transformers.__version__],
        "settings": {k: settings[k] for k in sorted(settings)},
    }
    if parts["weights"] is None:
        return None, parts
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32], parts


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """(n, 2) uint64: a 128-bit BLAKE2b key of each text's UTF-8 bytes."""
    out = np.empty((len(texts), 16), dtype=np.uint8)
    for i, t in enumerate(texts):
        out[i] = np.frombuffer(
            hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest(),
            dtype=np.uint8)
    return out.view(np.uint64).reshape(len(texts), 2)
