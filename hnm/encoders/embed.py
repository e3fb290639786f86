"""No-gradient embedding helper shared by samplers, miners and evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from hnm import counting
from hnm.encoders.clip import clip_for
from hnm.encoders.inference import backend_for
from hnm.types import EmbedFn


def embed_fn(model: SentenceTransformer, batch_size: int = 64, desc: str | None = None,
             progress: bool = True, backend: str | None = None,
             normalize: bool = True) -> EmbedFn:
    """Return ``f(texts) -> (n, d) float32`` normalised embeddings from the model's current weights
    (``normalize=False``: the model's own output, for a model that does not normalise).

    The model is put in eval mode for the call and every submodule gets its own mode back
    afterwards (not the wrapper's flag: a SentenceTransformer whose inner transformer was in
    eval mode stays so), so it can be used in the middle of training (NGAME re-clustering,
    ANCE re-mining) and before it (zero-shot evaluation) without switching dropout.

    ``backend`` (default: the model's ``encoder.inference``, else ``torch``) chooses how the
    pass runs, float32 or bf16 among them: see :mod:`hnm.encoders.inference`.
    """
    runner = backend_for(model, backend)

    def f(texts: Sequence[str]) -> np.ndarray:
        counting.add(len(texts))
        with eval_mode(model), torch.inference_mode():
            return runner.encode(model, texts, batch_size, progress, normalize)

    return f


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards each submodule's own ``training`` flag is restored."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def tokenize(model: SentenceTransformer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tokenise texts for a training forward pass, on the model's device."""
    prep = getattr(model, "preprocess", None) or model.tokenize
    feats = prep(clip_for(model, texts))  # a huge text costs what a normal one does
    return {k: (v.to(model.device) if isinstance(v, torch.Tensor) else v) for k, v in feats.items()}


def forward(model: SentenceTransformer, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Embeddings with gradient, (n, d), from tokenised features."""
    return model(dict(features))["sentence_embedding"]


def encode_with_grad(model: SentenceTransformer, texts: Sequence[str]) -> torch.Tensor:
    """Tokenise and embed texts with gradient (the training path)."""
    return forward(model, tokenize(model, texts))
