"""Pre-batch negatives: document embeddings of the last k batches, reused as negatives."""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from hnm.errors import ConfigError, check_range
from hnm.negatives.false_negative_mask import known_positive_columns
from hnm.state import PartState
from hnm.types import Phase, ScoreContext


class PreBatchNegatives(PartState):
    """Reuse the (detached) document embeddings of the previous ``k`` batches as negatives.

    Before the loss, the buffered embeddings of the last ``k`` batches (with their ids and texts)
    join the candidates as shared negatives; entries whose id is a known positive of a query
    (``ctx.positives`` or its own positive) are masked for that query. Then the current batch's
    documents (``docs``: its positives, or every real candidate of the batch) are pushed,
    detached, and the oldest batch falls out. No extra forward pass: the embeddings are those the
    online encoder produced when their batch was trained, so they are up to ``k`` steps stale.
    Only the batch's positives are kept (as in both papers): explicit negatives are already
    hard negatives of their own queries, and shared extras (a queue) are not batch documents.

    The buffer is the strategy's state (``state_dict``: checkpointed, restored on ``resume=``).
    Under
    gradient accumulation a batch is a micro-batch: the previous micro-batches of the same
    optimizer step were encoded by the same weights, so they are the freshest pre-batches.
    The first batch has no previous one, so a run needs at least two optimizer steps
    (``check_schedule`` refuses a shorter one).

    Telemetry: ``prebatch_size`` (entries added), ``prebatch_masked`` (entries masked as known
    positives), ``prebatch_score`` (mean raw score of queries against them). Effect:
    ``candidates_added`` (pre-batch columns that reached the loss, summed over batches) and
    ``candidates_masked`` (query-entry pairs masked as known positives).

    Args:
        k: number of previous batches kept (both papers use a small number, a few batches).

    Reference: Lee et al., "Learning Dense Representations of Phrases at Scale" (DensePhrases,
    pre-batch negatives), ACL 2021; Wang et al., "SimKGC: Simple Contrastive
    Knowledge Graph Completion with Pre-trained Language Models", ACL 2022. Departures: neither
    paper masks known positives in the pre-batch (SimKGC masks only the triple's own tail); stale
    embeddings are used as they are (no re-encoding). Recommended when batches are small and
    consecutive batches are diverse (random sampler); with clustered samplers (``ngame``) the
    previous batches are easy negatives. Prefer ``queue`` when staleness matters.

    Measured (``stdlib_code`` dev, all-MiniLM-L6-v2, 1,000 pairs, 32 steps, seeds 1–3, README
    "Every option's default"): k = 2 scored below the baseline on every seed (−0.0098,
    −0.0131, −0.0088; Δ −0.0106), not below it after Holm over the options. Starting from a
    model already trained contrastively on large batches, the extra gradient-free negatives did
    not help in a short run; longer runs or a weaker starting model were not measured.
    """

    phases = (Phase.IN_BATCH,)

    def __init__(self, k: int = 2) -> None:
        check_range("negatives.prebatch.k", k, 1)
        self.k = int(k)
        self.buffer: deque[tuple[Tensor, list[str], list[str]]] = deque(maxlen=self.k)
        self.added = 0
        self.masked = 0

    def effect(self) -> dict[str, float]:
        return {"candidates_added": float(self.added), "candidates_masked": float(self.masked)}

    def check_schedule(self, epochs: int, steps: int) -> None:
        if steps < 2:
            raise ConfigError(
                f"negatives.prebatch: a batch's positives become negatives of the batches after "
                f"it, so a run of {steps} optimizer step (trainer.max_steps, trainer.max_epochs) "
                "never trains against them; train for at least 2 steps")

    def candidates(self) -> tuple[Tensor | None, list[str], list[str]]:
        """Buffered (M, d) embeddings, ids and texts, oldest batch first."""
        if not self.buffer:
            return None, [], []
        emb = torch.cat([e for e, _, _ in self.buffer])
        ids = [i for _, batch_ids, _ in self.buffer for i in batch_ids]
        texts = [t for _, _, batch_texts in self.buffer for t in batch_texts]
        return emb, ids, texts

    def push(self, emb: Tensor, ids: list[str], texts: list[str]) -> None:
        self.buffer.append((emb.detach().clone(), list(ids), list(texts)))

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        n0 = len(ctx.doc_ids)
        cols = list(dict.fromkeys(ctx.labels.tolist()))
        current = (ctx.d[cols].detach(), [ctx.doc_ids[j] for j in cols],
                   [ctx.doc_texts[j] for j in cols])
        emb, ids, texts = self.candidates()
        if emb is not None:
            ctx.add_candidates(emb.to(ctx.d.device), ids, texts)
            known = known_positive_columns(ctx, n0)
            ctx.mask |= known
            with torch.no_grad():
                ctx.logs["prebatch_score"] = float((ctx.q.detach() @ ctx.d[n0:].detach().T)
                                                   .float().mean())
            ctx.logs["prebatch_masked"] = float(known.sum())
            self.added += len(ids)
            self.masked += int(known.sum())
        ctx.logs["prebatch_size"] = float(len(ids))
        self.push(*current)
        return ctx
