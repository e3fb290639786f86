"""Mask candidates that are the query's positive under another column: same id or same text."""

from __future__ import annotations

import re

import torch
from torch import Tensor

from hnm.errors import ConfigError
from hnm.state import PartState
from hnm.types import Phase, ScoreContext

_SPACE = re.compile(r"\s+")


def normalize_text(text: str, whitespace: bool = True, lowercase: bool = True) -> str:
    """Collapse runs of whitespace (and strip) and/or casefold, for duplicate detection."""
    if whitespace:
        text = _SPACE.sub(" ", text).strip()
    if lowercase:
        text = text.casefold()
    return text


def _codes(values: list[str], device: torch.device) -> Tensor:
    """Integer code per value (equal values, equal codes); ``""`` gets -1 (never matches)."""
    index: dict[str, int] = {}
    out = [-1 if v == "" else index.setdefault(v, len(index)) for v in values]
    return torch.tensor(out, dtype=torch.long, device=device)


def known_positive_columns(ctx: ScoreContext, start: int = 0) -> Tensor:
    """(B, N) bool: candidate ``j >= start`` has an id that is a known positive of query ``i``.

    Known positives are ``ctx.positives[qid]`` plus the query's own ``pos_id``. The label column
    is never set. Strategies that append candidates (queue, pre-batch) use this with ``start`` at
    their first new column, since the module's own known-positive mask ran before them.
    """
    b, n = ctx.batch_size, len(ctx.doc_ids)
    out = torch.zeros(b, n, dtype=torch.bool, device=ctx.mask.device)
    if start >= n:
        return out
    ids = ctx.doc_ids[start:]
    codes = _codes(ids, out.device)
    index = {v: int(c) for v, c in zip(ids, codes.tolist()) if c >= 0}
    for i, (qid, pos) in enumerate(zip(ctx.qids, ctx.pos_ids)):
        known = [index[d] for d in ctx.positives.get(qid, set()) | {pos} if d in index]
        if known:
            out[i, start:] = torch.isin(codes, torch.tensor(known, device=out.device))
    out[torch.arange(b, device=out.device), ctx.labels] = False
    return out


class FalseNegativeMask(PartState):
    """Mask candidates that share a document id or the text of one of the query's positives.

    A candidate ``j`` stops being a negative of query ``i`` when

    * ``match_ids``: its id is a known positive of ``i`` (``ctx.positives[qid]`` or the pair's own
      positive id), wherever it sits (in-batch positive of another query, explicit negative,
      queue/pre-batch entry); or
    * ``match_text``: its text equals (after normalisation) the text of one of ``i``'s positives
      in the batch (its label column, and with ``match_ids`` any candidate whose id is a known
      positive of ``i``).
      This catches the same passage stored under two ids, common in scraped corpora.

    Shapes: reads ``ctx.doc_ids``/``ctx.doc_texts`` (N), writes ``ctx.mask`` (B, N). The label
    column is never masked. Telemetry: ``fnm_masked_frac`` (newly masked / (B·(N-1))),
    ``fnm_text_dups`` (masked by text only). Effect: ``candidates_masked`` (query-candidate
    pairs it masked that nothing had masked before it, over the run) and ``text_duplicates``
    (those matched by text only). With ``match_text=false`` it adds nothing to the module's
    own ``mask_known_positives`` (on by default) unless extra candidates precede it, and the
    run ends with the no-effect warning.

    Args:
        match_ids: mask candidates whose id is a known positive.
        match_text: mask candidates whose text equals a positive's text.
        normalize_whitespace: collapse whitespace runs before comparing texts.
        lowercase: casefold before comparing texts.

    Reference: the false-negative problem of in-batch negatives (RocketQA, Qu et al., NAACL 2021;
    sentence-transformers' ``NoDuplicatesBatchSampler``). This is exact-match de-duplication, not
    a learned denoiser: semantically equivalent but differently worded positives need ``gist``.
    Recommended with every sampler that can put one document twice in a batch (``ngame``,
    ``tas_balanced``) and with ``queue``/``prebatch`` placed before it.
    """

    phases = (Phase.IN_BATCH,)

    def __init__(self, match_ids: bool = True, match_text: bool = True,
                 normalize_whitespace: bool = True, lowercase: bool = True) -> None:
        if not (match_ids or match_text):
            raise ConfigError("negatives.false_negative_mask.match_ids=false and "
                              "negatives.false_negative_mask.match_text=false: it would mask "
                              "nothing; set at least one of them to true")
        self.match_ids = bool(match_ids)
        self.match_text = bool(match_text)
        self.normalize_whitespace = normalize_whitespace
        self.lowercase = lowercase
        self.masked = 0
        self.text_masked = 0

    def effect(self) -> dict[str, float]:
        return {"candidates_masked": float(self.masked),
                "text_duplicates": float(self.text_masked)}

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        b, n = ctx.batch_size, len(ctx.doc_ids)
        rows = torch.arange(b, device=ctx.mask.device)
        by_id = known_positive_columns(ctx)
        new = by_id.clone() if self.match_ids else torch.zeros_like(ctx.mask)
        text_only = torch.zeros_like(ctx.mask)
        if self.match_text:
            norm = [normalize_text(t, self.normalize_whitespace, self.lowercase)
                    for t in ctx.doc_texts]
            codes = _codes(norm, ctx.mask.device)                       # (N,)
            pos_cols = by_id.clone() if self.match_ids else torch.zeros_like(ctx.mask)
            pos_cols[rows, ctx.labels] = True                          # (B, N) positives of i
            hit = torch.zeros_like(ctx.mask)
            for i in range(b):  # candidate j matches query i when a positive of i has j's text
                pos_codes = codes[pos_cols[i]]
                pos_codes = pos_codes[pos_codes >= 0]
                if pos_codes.numel():
                    hit[i] = torch.isin(codes, pos_codes)
            hit[rows, ctx.labels] = False
            text_only = hit & ~new
            new = new | hit
        added = new & ~ctx.mask
        ctx.mask |= new
        denom = max(b * max(n - 1, 1), 1)
        ctx.logs["fnm_masked_frac"] = float(added.sum()) / denom
        ctx.logs["fnm_text_dups"] = float(text_only.sum())
        self.masked += int(added.sum())
        self.text_masked += int((added & text_only).sum())
        return ctx
