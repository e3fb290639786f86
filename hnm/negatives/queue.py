"""MoCo-style momentum encoder and FIFO queue of its document embeddings as extra negatives."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

from hnm import counting
from hnm.encoders.embed import encode_with_grad, eval_mode
from hnm.errors import ConfigError, check_range
from hnm.negatives.false_negative_mask import known_positive_columns
from hnm.state import PartState
from hnm.types import Phase, ScoreContext, TrainingView


class MomentumQueue(PartState):
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
    (``check_schedule`` refuses a shorter one). The key encoder is a model this strategy
    declares (:meth:`models`): the training module registers it (its weights are in every
    checkpoint, it moves with the module) and it is listed by ``frozen_models()`` (eval mode at
    every step). The queue, its ids and texts are the strategy's state (``state_dict``).

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
    Meant for small batches (CPU / one GPU) where in-batch negatives are few (but see the
    measurement below); pair with
    ``gist`` or ``false_negative_mask`` placed after it to guard the queue's texts.

    Measured (``stdlib_code`` dev, all-MiniLM-L6-v2, 1,000 pairs, 32 steps, README "Every
    option's default"): the default (1,024, m = 0.999) scored below the baseline on every seed
    (−0.0195, −0.0197, −0.0133; Δ −0.0175), not below it after Holm over the options; a queue
    of 128 −0.0079 (−0.0070, −0.0082, −0.0086), so the harm grows with the queue. Staleness is
    not the cause: fresher keys did no better on seed 1 (m = 0.99 −0.0202, 0.9 −0.0241,
    0 −0.0251 against the baseline's same seed; 0.999 −0.0195). Starting from a model already
    trained contrastively on large batches, the extra gradient-free negatives did not help in
    a short run; longer runs or a weaker starting model were not measured.
    """

    phases = (Phase.IN_BATCH, Phase.OPTIMIZER_STEP, Phase.STEP_END)
    not_state = ("key_encoder",)  # a model it declared: in Lightning's checkpoint

    def __init__(self, size: int = 1024, momentum: float = 0.999,
                 encode_batch_size: int = 64) -> None:
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
        self.key_encoder: SentenceTransformer | None = None
        self.key_ready = False  # θ_k holds a copy of the online weights (the first update)

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
    def models(self, encoder: nn.Module, doc_encoder: nn.Module | None) -> dict[str, nn.Module]:
        """The key encoder, declared as the training module's ``queue_key_encoder`` (its
        weights are in every checkpoint, it moves with the module): a frozen copy of the
        document encoder, which the first update sets to the online weights."""
        key = copy.deepcopy(doc_encoder or encoder)
        key.requires_grad_(False)
        self.key_encoder = key  # type: ignore[assignment]
        return {"queue_key_encoder": key}

    @torch.no_grad()
    def ensure_key_encoder(self, online: nn.Module) -> SentenceTransformer:
        """``θ_k = θ_q`` the first time (a copy of the online weights; a new frozen copy where
        no key encoder was declared, outside a training module)."""
        if self.key_encoder is None:
            key = copy.deepcopy(online)
            key.requires_grad_(False)
            self.key_encoder = key  # type: ignore[assignment]
        elif not self.key_ready:
            self.key_encoder.load_state_dict(online.state_dict())
        self.key_ready = True
        return self.key_encoder  # type: ignore[return-value]

    @torch.no_grad()
    def momentum_update(self, online: nn.Module) -> None:
        """``θ_k ← m·θ_k + (1-m)·θ_q`` for every parameter (a copy on the first call)."""
        if not self.key_ready:
            self.ensure_key_encoder(online)
            return  # θ_k = θ_q: the copy is the update
        key = self.key_encoder
        assert key is not None
        device = next(online.parameters()).device
        if next(key.parameters()).device != device:
            key.to(device)
        for pk, pq in zip(key.parameters(), online.parameters(), strict=True):
            pk.mul_(self.momentum).add_(pq.detach().to(pk.dtype), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def encode_keys(self, texts: list[str]) -> Tensor:
        key = self.key_encoder
        assert key is not None
        counting.add(len(texts))
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
    def __call__(self, ctx: ScoreContext) -> ScoreContext:
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
        return ctx

    def frozen_models(self) -> list[nn.Module]:
        """The key encoder: updated by momentum only, always in eval mode."""
        return [self.key_encoder] if self.key_encoder is not None else []

    def on_optimizer_step(self, view: TrainingView) -> None:
        """The momentum update, once per optimizer step (not per accumulated micro-batch)."""
        self.momentum_update(view.doc_encoder or view.encoder)

    def on_step_end(self, view: TrainingView, ctx: ScoreContext) -> None:
        """Enqueue this batch's positives (``ctx``: the step's context), encoded by the key
        encoder."""
        if not self.key_ready:  # before the first optimizer step: θ_k = θ_q
            self.ensure_key_encoder(view.doc_encoder or view.encoder)
        labels = ctx.labels.tolist()
        texts = [ctx.doc_texts[j] for j in labels]
        self.enqueue(self.encode_keys(texts), [ctx.doc_ids[j] for j in labels], texts)
