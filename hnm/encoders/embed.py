"""No-gradient embedding helper shared by samplers, miners and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from hnm.types import EmbedFn


def embed_fn(model: SentenceTransformer, batch_size: int = 64, desc: str | None = None,
             progress: bool = True) -> EmbedFn:
    """Return ``f(texts) -> (n, d) float32`` normalised embeddings from the model's current weights.

    The model is put in eval mode for the call and restored afterwards, so it can be used in the
    middle of training (NGAME re-clustering, ANCE re-mining).
    """

    def f(texts: Sequence[str]) -> np.ndarray:
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                out = model.encode(
                    list(texts), batch_size=batch_size, convert_to_numpy=True,
                    normalize_embeddings=True, show_progress_bar=progress and len(texts) > batch_size,
                )
        finally:
            model.train(was_training)
        return np.ascontiguousarray(out, dtype=np.float32)

    return f


def tokenize(model: SentenceTransformer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tokenise texts for a training forward pass, on the model's device."""
    prep = getattr(model, "preprocess", None) or model.tokenize
    feats = prep(list(texts))
    return {k: (v.to(model.device) if isinstance(v, torch.Tensor) else v) for k, v in feats.items()}


def forward(model: SentenceTransformer, features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Embeddings with gradient, (n, d), from tokenised features."""
    return model(dict(features))["sentence_embedding"]


def encode_with_grad(model: SentenceTransformer, texts: Sequence[str]) -> torch.Tensor:
    """Tokenise and embed texts with gradient (the training path)."""
    return forward(model, tokenize(model, texts))
