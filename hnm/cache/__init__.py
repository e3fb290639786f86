"""Content-addressed cache of frozen-weight embeddings (see :mod:`hnm.cache.embed`)."""

from hnm.cache.embed import (
    EmbeddingCache,
    activate,
    active,
    from_config,
    frozen,
    frozen_embed_fn,
)
from hnm.cache.fingerprint import model_key, text_keys, weights_fingerprint

__all__ = ["EmbeddingCache", "activate", "active", "from_config", "frozen", "frozen_embed_fn",
           "model_key", "text_keys", "weights_fingerprint"]
