"""Cut texts to a bound in characters before tokenizing: one huge line costs what a normal one does.

A tokenizer reads the whole text before it truncates to the model's ``max_seq_length`` tokens:
a 50 MB corpus line took a minute and gigabytes per encoding pass. Every text is therefore cut
to ``CHARS_PER_TOKEN × max_seq_length`` characters first (from the end the tokenizer keeps:
its ``truncation_side``). The bound is generous, so the tokens of ordinary texts are
unchanged: across the stdlib code-search set (15,400 texts) the first ``N`` tokens of a text
span at most 5.8 characters per token (N = 64…512) and one token with the whitespace before it
at most 68 characters; a text is cut only when it is longer than 256 characters per token, so
what lies beyond the cut is far past the tokens the model reads (tests/encoders/test_clip.py
checks the tokens of that set are identical).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHARS_PER_TOKEN = 256
MIN_CHARS = 4096


def char_limit(max_tokens: Any) -> int | None:
    """The bound in characters for ``max_tokens`` tokens (None: no bound known)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return None
    return max(CHARS_PER_TOKEN * max_tokens, MIN_CHARS)


def clip_texts(texts: Sequence[Any], max_tokens: Any, left: bool = False) -> list[Any]:
    """``texts`` with every string longer than :func:`char_limit` cut to it (its last
    characters when ``left``); other items (pairs: see :func:`clip_for`) as they are."""
    limit = char_limit(max_tokens)
    if limit is None:
        return list(texts)
    out: list[Any] = []
    for t in texts:
        if isinstance(t, str) and len(t) > limit:
            t = t[-limit:] if left else t[:limit]
        elif isinstance(t, (tuple, list)) and any(isinstance(x, str) and len(x) > limit
                                                  for x in t):
            t = type(t)(clip_texts(list(t), max_tokens, left))
        out.append(t)
    return out


def clip_for(model: Any, texts: Sequence[Any]) -> list[Any]:
    """:func:`clip_texts` with ``model``'s limit: a SentenceTransformer's ``max_seq_length``,
    a CrossEncoder's ``max_length``; its tokenizer's ``truncation_side``."""
    limit = getattr(model, "max_seq_length", None)
    if limit is None:
        limit = getattr(model, "max_length", None)
    tokenizer = getattr(model, "tokenizer", None)
    left = getattr(tokenizer, "truncation_side", "right") == "left"
    return clip_texts(texts, limit, left)
