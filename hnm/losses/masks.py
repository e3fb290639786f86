"""Which in-batch queries are no negatives of a positive: the mask of the document->query terms
(InfoNCE's ``symmetric`` term and its ``doc_to_query``/``query_to_query`` directions)."""

from __future__ import annotations

import torch
from torch import Tensor

from hnm.types import ScoreContext


def symmetric_mask(ctx: ScoreContext) -> Tensor:
    """(B, B) bool: True where query ``j`` must not be a negative of positive ``i`` (``i != j``):
    the same query (id or text), the same positive id, or positive ``i`` masked for query ``j``
    in the forward term (a known positive, or a strategy's mask)."""
    same = _same_ids(ctx.qids, ctx.mask.device) | _same_ids(ctx.pos_ids, ctx.mask.device)
    same |= _same_texts(ctx.queries, ctx.mask.device)
    same |= ctx.mask[:, ctx.labels].T  # [i, j] = mask[j, labels[i]]
    same.fill_diagonal_(False)
    return same


def _same_ids(ids: list[str], device: torch.device) -> Tensor:
    index = {v: i for i, v in enumerate(dict.fromkeys(ids))}
    codes = torch.tensor([index[v] for v in ids], device=device)
    return codes[:, None] == codes[None, :]


def _same_texts(texts: list[str], device: torch.device) -> Tensor:
    """Like :func:`_same_ids`, but an empty text (unknown) equals nothing."""
    same = _same_ids(texts, device)
    known = torch.tensor([t != "" for t in texts], dtype=torch.bool, device=device)
    return same & known[:, None] & known[None, :]
