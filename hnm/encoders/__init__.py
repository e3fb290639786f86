"""Encoder backbones: all built as sentence-transformers models (Transformer -> Pool -> Norm)."""

from hnm.encoders.embed import embed_fn, encode_with_grad, forward, tokenize
from hnm.encoders.factory import hf_encoder, minilm_encoder, tiny_encoder

__all__ = ["embed_fn", "encode_with_grad", "forward", "tokenize", "hf_encoder", "minilm_encoder", "tiny_encoder"]
