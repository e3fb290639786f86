"""Pieces of a batch's score context: the known-positive mask and the teacher scores' grid."""

from __future__ import annotations

import torch
from torch import Tensor

from hnm.types import ScoreContext


def known_positive_mask(ctx: ScoreContext) -> Tensor:
    """(B, N) True where candidate j is a known positive of query i (other than its label)."""
    rows = []
    for qid, pos in zip(ctx.qids, ctx.pos_ids):
        known = ctx.positives.get(qid, set()) | {pos}
        rows.append([did in known for did in ctx.doc_ids])
    mask = torch.tensor(rows, dtype=torch.bool, device=ctx.mask.device)
    mask[torch.arange(ctx.batch_size, device=mask.device), ctx.labels] = False
    return mask


def teacher_matrix(teacher: Tensor | None, b: int, n_neg: int, device: torch.device
                    ) -> Tensor | None:
    """Place per-pair teacher scores ``(B, 1+k)`` (positive first) on the (B, B*(1+k)) grid."""
    if teacher is None:
        return None
    k = teacher.shape[1] - 1
    out = torch.full((b, b + n_neg), float("nan"), device=device)
    rows = torch.arange(b, device=device)
    out[rows, rows] = teacher[:, 0]
    if k > 0:
        cols = b + rows[:, None] * k + torch.arange(k, device=device)[None, :]
        out[rows[:, None], cols] = teacher[:, 1:]
    return out
