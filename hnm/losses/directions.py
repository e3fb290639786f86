"""InfoNCE's interaction directions, partition modes and hardness weighting, with the knob
names and semantics of sentence-transformers' ``MultipleNegativesRankingLoss``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hnm.errors import ConfigError, check_choice, check_range
from hnm.losses.masks import symmetric_mask
from hnm.types import ScoreContext

DIRECTIONS: tuple[str, ...] = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
PARTITION_MODES: tuple[str, ...] = ("joint", "per_direction")
HARDNESS_MODES: tuple[str | None, ...] = (None, "in_batch_negatives", "hard_negatives",
                                          "all_negatives")


def check_knobs(directions: Sequence[str], partition_mode: str, hardness_mode: str | None,
                hardness_strength: float) -> tuple[str, ...]:
    """Validate the knobs (as sentence-transformers does, but as :class:`ConfigError`)."""
    dirs = tuple(str(d) for d in directions)
    if not dirs:
        raise ConfigError("loss.directions=[] is not valid; expected a list of "
                          f"{', '.join(DIRECTIONS)} that includes query_to_doc")
    for d in dirs:
        check_choice("loss.directions", d, DIRECTIONS)
    if "query_to_doc" not in dirs:
        raise ConfigError(f"loss.directions={list(dirs)} lacks query_to_doc, the direction that "
                          "holds each query's positive; add it")
    if len(set(dirs)) != len(dirs):
        raise ConfigError(f"loss.directions={list(dirs)} repeats a direction; list each once")
    check_choice("loss.partition_mode", partition_mode, PARTITION_MODES)
    if partition_mode == "per_direction" and set(dirs) & {"query_to_query", "doc_to_doc"}:
        raise ConfigError(
            f"loss.partition_mode=per_direction with loss.directions={list(dirs)}: query_to_query "
            "and doc_to_doc never contain the positive pair, so a softmax of their own is "
            "ill-defined (as in sentence-transformers). Use loss.partition_mode=joint")
    check_choice("loss.hardness_mode", hardness_mode, HARDNESS_MODES)
    check_range("loss.hardness_strength", hardness_strength, 0.0)
    if hardness_mode is not None and float(hardness_strength) == 0.0:
        raise ConfigError(f"loss.hardness_mode={hardness_mode} with loss.hardness_strength=0: "
                          "the hardness weighting would never act; set a positive strength "
                          "(sentence-transformers' references use 5 to 9) or hardness_mode=null")
    return dirs


def own_columns(ctx: ScoreContext) -> Tensor:
    """(B, N) bool: the query's own positive and its own explicit negatives."""
    b, n, k = ctx.batch_size, ctx.d.shape[0], ctx.num_negatives
    own = torch.zeros(b, n, dtype=torch.bool, device=ctx.mask.device)
    rows = torch.arange(b, device=own.device)
    own[rows, ctx.labels] = True
    if k > 0:
        cols = b + rows[:, None] * k + torch.arange(k, device=own.device)[None, :]
        own[rows[:, None], cols] = True
    return own


def hardness_penalty(ctx: ScoreContext, scores: Tensor, mode: str | None,
                     strength: float) -> tuple[Tensor, Tensor | None]:
    """``strength · stop_grad(score)`` on the negatives ``mode`` selects, for the (B, N) dense
    columns and the (B, m) per-query extra logits (None without extras).

    ``in_batch_negatives``: every column that is not the query's own (other pairs' positives and
    negatives, and shared extras such as a queue); ``hard_negatives``: the query's own explicit
    negatives and its per-query synthetic extras (MoCHi mixes); ``all_negatives``: both."""
    b = ctx.batch_size
    own = own_columns(ctx)
    rows = torch.arange(b, device=own.device)
    positive = torch.zeros_like(own)
    positive[rows, ctx.labels] = True
    if mode == "in_batch_negatives":
        chosen = ~own
    elif mode == "hard_negatives":
        chosen = own & ~positive
    else:  # all_negatives
        chosen = ~positive
    penalty = torch.where(chosen, strength * scores.detach(), torch.zeros_like(scores))
    extra = None
    if ctx.extra_logits:
        raw = torch.cat([e.float() for e in ctx.extra_logits], dim=1).detach()
        extra = strength * raw if mode in ("hard_negatives", "all_negatives") \
            else torch.zeros_like(raw)
    return penalty, extra


def same_query_mask(ctx: ScoreContext) -> Tensor:
    """(B, B) bool for query_to_query: True where query ``j`` must not be a negative of query
    ``i``: itself, a duplicate (same id or text), the same positive, or a query whose positive is
    masked for ``i`` (or ``i``'s for ``j``) in the forward term."""
    same = symmetric_mask(ctx)  # [i, j] = query j is no negative of positive i
    same = same | same.T
    same.fill_diagonal_(True)
    return same


def direction_rows(ctx: ScoreContext, directions: Sequence[str], temperature: float,
                   hardness_mode: str | None, hardness_strength: float,
                   forward_logits: Tensor) -> tuple[list[Tensor], int]:
    """The (B, ·) logit rows of every direction (query_to_doc first), in float32, masked
    entries at the dtype's minimum, and how many unmasked negatives the hardness raised.
    ``forward_logits`` are query_to_doc's (masked, extras appended, no hardness yet)."""
    neg_min = torch.finfo(torch.float32).min
    q, d = ctx.q.float(), ctx.d.float()
    pos = d[ctx.labels]
    rows: list[Tensor] = []
    weighted = 0
    with torch.autocast(ctx.q.device.type, enabled=False):
        q2d = forward_logits.float()
        if hardness_mode is not None:
            penalty, extra = hardness_penalty(ctx, ctx.scores(), hardness_mode, hardness_strength)
            if extra is not None:
                penalty = torch.cat([penalty, extra], dim=1)
            keep = q2d > neg_min  # masked columns stay masked
            weighted = int((keep & (penalty != 0)).sum())
            q2d = torch.where(keep, q2d + penalty, q2d)
        for name in (x for x in DIRECTIONS if x in directions):  # query_to_doc first
            if name == "query_to_doc":
                rows.append(q2d)
            elif name == "query_to_query":
                qq = (q @ q.T) / temperature
                rows.append(qq.masked_fill(same_query_mask(ctx), neg_min))
            elif name == "doc_to_query":
                dq = (pos @ q.T) / temperature
                rows.append(dq.masked_fill(symmetric_mask(ctx), neg_min))
            else:  # doc_to_doc: the positive against every candidate but the query's own
                dd = (pos @ d.T) / temperature
                rows.append(dd.masked_fill(own_columns(ctx) | ctx.mask, neg_min))
    return rows, weighted


def directions_per_query(ctx: ScoreContext, rows: list[Tensor], partition_mode: str) -> Tensor:
    """(B,) ``log Z - s(q_i, d_i+)`` with one softmax over all rows (``joint``) or the mean of
    each row's log-partition (``per_direction``); the positive is query_to_doc's label."""
    b = ctx.batch_size
    positive = rows[0][torch.arange(b, device=rows[0].device), ctx.labels]
    if partition_mode == "joint":
        log_z = torch.logsumexp(torch.cat(rows, dim=1), dim=1)
    else:
        log_z = torch.stack([torch.logsumexp(r, dim=1) for r in rows]).mean(dim=0)
    return log_z - positive
