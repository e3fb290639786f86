"""GISTEmbed: a frozen guide model masks in-batch negatives it rates above the positive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor

from hnm.cache import frozen_embed_fn
from hnm.errors import ConfigError, check_choice, check_range
from hnm.state import PartState
from hnm.types import EmbedFn, Phase, ScoreContext, TrainingView

MarginStrategy = Literal["absolute", "relative"]
MARGIN_STRATEGIES = ("absolute", "relative")
# why ``guide: null`` (the YAML's default) refuses to start, and what to give instead
NO_GUIDE = (
    "+negatives=gist needs a guide model stronger than the model being trained; none was "
    "given (negatives.gist.guide is null). Give one, e.g. negatives.gist.guide='{_target_: "
    "hnm.encoders.factory.hf_encoder, name: PATH}' (PATH: a sentence-transformers folder or hub "
    "name). With the starting model as its own guide (the old default) GIST scored nDCG@10 "
    "-0.0080 below the baseline on stdlib_code test (3 seeds, Holm p = 0.001), and "
    "sentence-transformers rejected the same setting (PR #3662: with the student's own copy as "
    "guide training collapsed; a stronger guide is needed). To run it deliberately anyway: "
    "negatives.gist.guide='${encoder}' (a frozen copy of the starting encoder)")


class GISTFilter(PartState):
    """Guided in-sample selection of negatives (GISTEmbed).

    A frozen guide model embeds the batch's queries and candidate texts (no gradient) and scores
    every (query, candidate) pair by cosine similarity ``g``. Candidate ``j`` is masked for query
    ``i`` (it stops being a negative) when the guide rates it at least as high as the query's own
    positive, less a margin:

    * ``absolute``: ``g[i, j] >= g[i, pos_i] - margin``
    * ``relative``: ``g[i, j] >= g[i, pos_i] - |g[i, pos_i]| * margin``

    (sentence-transformers' ``GISTEmbedLoss`` ``margin_strategy``). Candidates without text
    (synthetic, or shared extras stored without text) are never masked; the label column is
    never masked.

    The guide's embeddings come from the view of training's frozen embedder (its weights are
    frozen; :meth:`bind`), so texts it has embedded before, in this run (the zero-shot corpus
    when the guide is the starting model) or an earlier one, are served from the run's
    embedding cache.

    The guide runs and scores in float32 outside autocast, as ``ScoreContext.scores()`` does:
    under bf16 mixed precision its embeddings and cosines would be rounded to ~3 significant
    digits, and ties with the positive (exact duplicates) would be decided by rounding. The
    guide is listed by ``frozen_models()``, so the module keeps it in eval mode at every step.

    Shapes: ``ctx.queries`` (B), ``ctx.doc_texts`` (N) -> updates ``ctx.mask`` (B, N).
    Telemetry: ``gist_masked_frac`` (newly masked / (B·(N-1))), ``gist_guide_pos`` (mean guide
    score of the positives). Effect: ``candidates_masked`` (query-candidate pairs this filter
    masked that nothing had masked before it, over the run).

    Args:
        guide: a SentenceTransformer, stronger than the model being trained; frozen here
            (``requires_grad_(False)``, eval mode) and moved to the embeddings' device on first
            use. None (the YAML's ``guide: null``) refuses to start (:data:`NO_GUIDE`);
            ``negatives.gist.guide='${encoder}'`` gives a fresh frozen copy of the run's
            starting encoder, deliberately.
        margin: margin of the filter (0 = mask what the guide ranks at or above the positive).
        margin_strategy: ``absolute`` | ``relative``.
        batch_size: texts per guide forward pass.

    Reference: Solatorio, "GISTEmbed: Guided In-sample Selection of Training Negatives for Text
    Embedding Fine-tuning" (2024). Departures: the paper always guides with a stronger,
    separately trained model; hnm has no such model to default to, so without a guide it refuses
    to start rather than guide with the starting model, which scored below the baseline here
    (nDCG@10 -0.0080 on stdlib_code test, 3 seeds) and which sentence-transformers rejected
    (PR #3662: with the student's own copy as guide it collapsed); that setting is still
    available explicitly (``negatives.gist.guide='${encoder}'``). The paper (and
    sentence-transformers) use a strict ``>``; ties are masked here, and identical texts are
    embedded once, so an exact duplicate of the positive is never a negative even at margin 0.
    Only query->document pairs are filtered (the paper also filters query-query and
    positive-positive terms of its symmetric loss). Texts are embedded once per distinct string.
    Recommended with large in-batch candidate sets (``ngame``, gathered multi-GPU batches) where
    false negatives are frequent; place it before ``queue``/``prebatch`` to guard only the
    batch, after them to guard their texts too.
    """

    phases = (Phase.IN_BATCH,)
    not_state = ("guide",)  # models it holds, not its state (hnm.state)

    def __init__(self, guide: SentenceTransformer | None = None, margin: float = 0.0,
                 margin_strategy: MarginStrategy = "absolute", batch_size: int = 64) -> None:
        check_choice("negatives.gist.margin_strategy", margin_strategy, MARGIN_STRATEGIES)
        check_range("negatives.gist.margin", margin, 0.0)
        check_range("negatives.gist.batch_size", batch_size, 1)
        if guide is None:
            raise ConfigError(NO_GUIDE)
        self.guide = guide
        self.guide.requires_grad_(False)
        self.guide.eval()
        self.margin = float(margin)
        self.margin_strategy = margin_strategy
        self.batch_size = int(batch_size)
        self.masked = 0
        self._embed: EmbedFn | None = None
        self._view: TrainingView | None = None

    def bind(self, view: TrainingView) -> None:
        """Embed with the guide through the run's embedding cache, which the view holds."""
        self._view = view
        self._embed = None

    def frozen_models(self) -> list[torch.nn.Module]:
        """The guide: never trained, in eval mode at every step."""
        return [self.guide]

    def effect(self) -> dict[str, float]:
        return {"candidates_masked": float(self.masked)}

    @torch.no_grad()
    def embed(self, texts: Sequence[str], device: torch.device) -> Tensor:
        """Guide embeddings (n, d), float32, L2-normalised, each distinct text embedded once
        (outside autocast)."""
        if self.guide.device != device:
            self.guide.to(device)
            self._embed = None
        self.guide.eval()
        if self._embed is None:
            self._embed = (frozen_embed_fn(self.guide, self.batch_size, progress=False)
                           if self._view is None
                           else self._view.frozen_embedder(self.guide, self.batch_size))
        uniq = list(dict.fromkeys(texts))
        with torch.autocast(device.type, enabled=False):
            emb = F.normalize(torch.from_numpy(self._embed(uniq)).to(device).float(), dim=-1)
        where = {t: k for k, t in enumerate(uniq)}
        return emb[torch.tensor([where[t] for t in texts], device=device)]

    def guide_scores(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """Guide cosine scores (B, N), float32 (NaN where a candidate has no text), and the text
        mask (N,)."""
        device = ctx.q.device
        has_text = torch.tensor([bool(t) for t in ctx.doc_texts], device=device)
        scores = torch.full((ctx.batch_size, len(ctx.doc_texts)), float("nan"), device=device)
        cols = has_text.nonzero().flatten()
        if cols.numel():
            q = self.embed(ctx.queries, device)
            d = self.embed([ctx.doc_texts[j] for j in cols.tolist()], device)
            with torch.autocast(device.type, enabled=False):
                scores[:, cols] = q @ d.T
        return scores, has_text

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        g, has_text = self.guide_scores(ctx)
        rows = torch.arange(ctx.batch_size, device=g.device)
        pos = g[rows, ctx.labels][:, None]                             # (B, 1)
        if self.margin_strategy == "absolute":
            threshold = pos - self.margin
        else:
            threshold = pos - pos.abs() * self.margin
        new = (g >= threshold) & has_text[None, :]                     # NaN compares False
        new[rows, ctx.labels] = False
        new = new.to(ctx.mask.device)
        added = new & ~ctx.mask
        ctx.mask |= new
        self.masked += int(added.sum())
        n = len(ctx.doc_texts)
        ctx.logs["gist_masked_frac"] = float(added.sum()) / max(ctx.batch_size * max(n - 1, 1), 1)
        ctx.logs["gist_guide_pos"] = float(torch.nanmean(pos))
        return ctx
