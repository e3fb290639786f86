"""A trainable cross-encoder ranker: (query, document) pairs read together, one logit each."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hnm import counting
from hnm.encoders.clip import clip_texts
from hnm.errors import ConfigError


class CrossEncoderRanker(torch.nn.Module):
    """A Hugging Face sequence-classification model with one output (a relevance logit).

    Built either from the starting bi-encoder's transformer (its weights and tokenizer, a
    fresh one-logit head seeded by ``seed``) or from a sentence-transformers ``CrossEncoder``
    folder or hub name (its model and tokenizer). :meth:`save` writes a folder that
    ``sentence_transformers.CrossEncoder(path)`` loads (``hnm eval eval.rerank_top_k=K``).

    Args:
        model: the ``transformers`` model (``num_labels=1``).
        tokenizer: its tokenizer.
        max_length: tokens per (query, document) pair; longer pairs are truncated.
    """

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 256) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)

    @classmethod
    def from_encoder(cls, encoder: Any, max_length: int = 256, seed: int = 0
                     ) -> CrossEncoderRanker:
        """A copy of the bi-encoder's transformer with a fresh one-logit head
        (``miner.ranker.model=fresh``: the ranker starts from the same pretrained weights as
        the retriever, its head untrained)."""
        from transformers import AutoModelForSequenceClassification

        first = encoder[0]
        auto, tok = getattr(first, "auto_model", None), getattr(first, "tokenizer", None)
        if auto is None or tok is None:
            raise ConfigError("miner.ranker.model=fresh builds the ranker from the encoder's "
                              f"transformer, but {type(first).__name__} has none; give "
                              "miner.ranker.model=PATH_OR_NAME_OF_A_CROSS_ENCODER")
        with tempfile.TemporaryDirectory(prefix="hnm-ranker-") as folder:
            auto.save_pretrained(folder)
            tok.save_pretrained(folder)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1)
            tok = type(tok).from_pretrained(folder)
        return cls(model.to(auto.device), tok, max_length)

    @classmethod
    def from_cross_encoder(cls, name: str, max_length: int = 256) -> CrossEncoderRanker:
        """The model and tokenizer of a sentence-transformers ``CrossEncoder`` (one label)."""
        from hnm.encoders.model_files import load_cross_encoder

        ce = load_cross_encoder(str(name), "miner.ranker.model", num_labels=1)
        return cls(ce.model, ce.tokenizer, max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, queries: Sequence[str], docs: Sequence[str]) -> Tensor:
        """(n,) float32 relevance logits of the pairs ``(queries[i], docs[i])``."""
        if len(queries) == 0:
            return torch.zeros(0, device=self.device)
        counting.add(len(queries), grad=torch.is_grad_enabled() and any(
            p.requires_grad for p in self.model.parameters()))
        left = getattr(self.tokenizer, "truncation_side", "right") == "left"
        queries = clip_texts(queries, self.max_length, left)  # huge texts: cut cheaply first
        docs = clip_texts(docs, self.max_length, left)
        feats = self.tokenizer(list(queries), list(docs), padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        feats = {k: v.to(self.device) for k, v in feats.items()}
        return self.model(**feats).logits[:, 0].float()

    def save(self, folder: str | Path) -> None:
        """A CrossEncoder-loadable folder (``config.json``, weights, tokenizer)."""
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
