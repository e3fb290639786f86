"""MoCo-style momentum encoder and FIFO queue of its document embeddings as extra negatives."""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from hnm.encoders.embed import encode_with_grad, eval_mode
from hnm.errors import ConfigError, check_range
from hnm.negatives.false_negative_mask import known_positive_columns
from hnm.types import Phase, ScoreContext, TrainingView


class MomentumQueue(nn.Module):
    """A momentum copy of the document encoder and a FIFO queue of its embeddings (MoCo).

    Every step, the ``size`` queued embeddings (with their ids and texts) join the candidates as
    shared negatives (``ctx.add_candidates``); queue entries whose id is a known positive of a
    query are masked for that query. After each batch:

    1. once per optimizer step (``on_optimizer_step``; not per micro-batch under gradient
       accumulation), momentum update of the key encoder ``θ_k ← m·θ_k + (1-m)·θ_q`` (created
       on first use as a deep copy of the document encoder being trained: the view's
       ``doc_encoder``, else its ``encoder``);
    2. after every batch (``on_step_end``), the batch's positive texts are embedded by the key
       encoder (no gradient, eval mode) and enqueued; the oldest entries are dropped first, so
       the queue keeps the newest ``size`` in arrival order.

    The first batch trains with an empty queue, so a run needs at least two optimizer steps
    (``check_schedule`` refuses a shorter one). The key encoder is listed by
    ``frozen_models()`` (eval mode at every step).

    State (key encoder weights, queue, ids, texts) is kept as the module's *extra state*, so it
    is checkpointed with the LightningModule and restored on ``resume=`` although the key
    encoder is created lazily; it is moved to the embeddings' device on use.

    Telemetry: ``queue_fill`` (entries / size), ``queue_masked`` (entries masked as known
    positives), ``queue_score`` (mean raw score of queries against the queue). Effect:
    ``candidates_added`` (queue columns that reached the loss, summed over batches) and
    ``candidates_masked`` (query-entry pairs masked as known positives).

    Args:
        size: queue length (MoCo: 65,536 on ImageNet; a few thousand suit text batches).
        momentum: ``m`` of the key-encoder update (MoCo: 0.999).
        encode_batch_size: texts per key-encoder forward pass when enqueuing.

    Reference: He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
    CVPR 2020; Shi et al., "CoCoSoDa: Effective Contrastive Learning for Code Search", ICSE 2023.
    Departures: queries and the batch's own documents still come from the online encoder (only
    the queue is momentum-encoded), as in CoCoSoDa's inter-modal queue rather than MoCo's key
    branch; the key encoder starts as a copy of the online encoder taken when the first batch
    is enqueued (after the first optimizer step; under gradient accumulation, before it); keys
    are computed in eval mode (no dropout) and the current batch is enqueued after its loss.
    Recommended with small batches (CPU / one GPU) where in-batch negatives are few; pair with
    ``gist`` or ``false_negative_mask`` placed after it to guard the queue's texts.
    """

    phases = (Phase.IN_BATCH, Phase.OPTIMIZER_STEP, Phase.STEP_END)

    # saved and restored by get_extra_state / set_extra_state (see hnm.state)
    restored_by_lightning = ("emb", "ids", "texts", "_key", "_pending_key_state")

    def __init__(self, size: int = 1024, momentum: float = 0.999,
                 encode_batch_size: int = 64) -> None:
        super().__init__()
        check_range("negatives.queue.size", size, 1)
        check_range("negatives.queue.momentum", momentum, 0.0, 1.0)
        check_range("negatives.queue.encode_batch_size", encode_batch_size, 1)
        self.size = int(size)
        self.momentum = float(momentum)
        self.encode_batch_size = int(encode_batch_size)
        self.added = 0
        self.masked = 0
        self.emb: Tensor | None = None
        self.ids: list[str] = []
        self.texts: list[str] = []
        self._key: list[SentenceTransformer] = []   # a list: keep it out of the parameters
        self._pending_key_state: dict[str, Tensor] | None = None
        self._pending: tuple[list[str], list[str]] | None = None

    # -- the queue ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return 0 if self.emb is None else self.emb.shape[0]

    def enqueue(self, emb: Tensor, ids: list[str], texts: list[str] | None = None) -> None:
        """Append (n, d) embeddings; keep the newest ``size`` entries, oldest first."""
        texts = texts if texts is not None else [""] * len(ids)
        emb = emb.detach()
        if self.emb is not None:
            emb = torch.cat([self.emb.to(emb.device, emb.dtype), emb])
        self.emb = emb[-self.size:].clone()
        self.ids = (self.ids + list(ids))[-self.size:]
        self.texts = (self.texts + list(texts))[-self.size:]

    # -- the key encoder ----------------------------------------------------------------------
    @property
    def key_encoder(self) -> SentenceTransformer | None:
        return self._key[0] if self._key else None

    def ensure_key_encoder(self, online: nn.Module) -> SentenceTransformer:
        if not self._key:
            key = copy.deepcopy(online)
            key.requires_grad_(False)
            if self._pending_key_state is not None:
                key.load_state_dict(self._pending_key_state)
                self._pending_key_state = None
            self._key.append(key)
        return self._key[0]

    @torch.no_grad()
    def momentum_update(self, online: nn.Module) -> None:
        """``θ_k ← m·θ_k + (1-m)·θ_q`` for every parameter (a fresh copy on first call)."""
        copied = not self._key and self._pending_key_state is None
        key = self.ensure_key_encoder(online)
        if copied:
            return  # θ_k = θ_q: the fresh copy is the update
        device = next(online.parameters()).device
        if next(key.parameters()).device != device:
            key.to(device)
        for pk, pq in zip(key.parameters(), online.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach().to(pk.dtype), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def encode_keys(self, texts: list[str]) -> Tensor:
        key = self.key_encoder
        assert key is not None
        with eval_mode(key):
            parts = [encode_with_grad(key, texts[s:s + self.encode_batch_size])
                     for s in range(0, len(texts), self.encode_batch_size)]
        return F.normalize(torch.cat(parts).float(), dim=-1)

    # -- what it does in a run ----------------------------------------------------------------
    def effect(self) -> dict[str, float]:
        return {"candidates_added": float(self.added), "candidates_masked": float(self.masked)}

    def check_schedule(self, epochs: int, steps: int) -> None:
        if steps < 2:
            raise ConfigError(
                f"negatives.queue: the queue is filled after each batch and used from the next "
                f"one on, so a run of {steps} optimizer step (trainer.max_steps, "
                "trainer.max_epochs) never trains against it; train for at least 2 steps")

    # -- the strategy -------------------------------------------------------------------------
    def forward(self, ctx: ScoreContext) -> ScoreContext:
        start = len(ctx.doc_ids)
        if self.emb is not None and len(self):
            ctx.add_candidates(self.emb.to(ctx.d.device), list(self.ids), list(self.texts))
            known = known_positive_columns(ctx, start)
            ctx.mask |= known
            with torch.no_grad():
                ctx.logs["queue_score"] = float((ctx.q.detach() @ ctx.d[start:].detach().T)
                                                .float().mean())
            ctx.logs["queue_masked"] = float(known.sum())
            self.added += len(ctx.doc_ids) - start
            self.masked += int(known.sum())
        ctx.logs["queue_fill"] = len(self) / self.size
        labels = ctx.labels.tolist()
        self._pending = ([ctx.doc_texts[j] for j in labels], [ctx.doc_ids[j] for j in labels])
        return ctx

    def frozen_models(self) -> list[nn.Module]:
        """The key encoder: updated by momentum only, always in eval mode."""
        return [self.key_encoder] if self.key_encoder is not None else []

    def on_optimizer_step(self, view: TrainingView) -> None:
        """The momentum update, once per optimizer step (not per accumulated micro-batch)."""
        self.momentum_update(view.doc_encoder or view.encoder)

    def on_step_end(self, view: TrainingView) -> None:
        """Enqueue this batch's positives, encoded by the key encoder."""
        if self.key_encoder is None:  # before the first optimizer step: θ_k = θ_q
            self.ensure_key_encoder(view.doc_encoder or view.encoder)
        if self._pending is None:
            return
        texts, ids = self._pending
        self._pending = None
        self.enqueue(self.encode_keys(texts), ids, texts)

    # -- checkpointing ------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        key = self.key_encoder
        key_state = ({k: v.detach().cpu() for k, v in key.state_dict().items()}
                     if key is not None else self._pending_key_state)
        return {"emb": None if self.emb is None else self.emb.detach().cpu(),
                "ids": list(self.ids), "texts": list(self.texts), "key": key_state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.emb = state.get("emb")
        self.ids = list(state.get("ids", []))
        self.texts = list(state.get("texts", []))
        key_state = state.get("key")
        if key_state is not None and self._key:
            self._key[0].load_state_dict(key_state)
        else:
            self._pending_key_state = key_state
