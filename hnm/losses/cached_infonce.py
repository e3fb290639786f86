"""GradCache: InfoNCE over a large batch with activation memory bounded by a chunk size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor

from hnm.dist import world as dist_world
from hnm.encoders.embed import encode_with_grad, forward, tokenize
from hnm.errors import ConfigError, check_range
from hnm.losses.infonce import InfoNCELoss
from hnm.state import PartState
from hnm.types import Phase, ScoreContext


@dataclass
class _Chunk:
    """One mini-batch of the first (no-graph) pass: its features and the RNG state before it."""

    features: dict[str, Tensor]
    cpu_rng: Tensor | None = None
    cuda_rng: Tensor | None = None


@dataclass
class _Replay:
    """What the backward pass needs to re-run the forward of every chunk with a graph."""

    model: SentenceTransformer
    chunks: list[_Chunk]
    device_type: str
    autocast: bool
    autocast_dtype: torch.dtype


def _snapshot(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


class _CachedEmbeddings(torch.autograd.Function):
    """Embeddings computed chunk by chunk without a graph; backward re-encodes each chunk.

    ``forward`` returns the (n, d) embeddings of every chunk, stored without activations.
    When the loss's backward reaches them with ``grad`` (n, d), each chunk is encoded again
    with a graph, under the RNG state and autocast setting of its first pass (so dropout masks
    are the same), and ``backward(chunk_embeddings, grad[chunk])`` accumulates the parameter
    gradients; only one chunk's activations are alive at a time. ``anchor`` is an empty tensor
    that requires grad, so that the output is part of the autograd graph.
    """

    @staticmethod
    def forward(ctx: Any, anchor: Tensor, replay: _Replay) -> Tensor:  # type: ignore[override]
        ctx.replay = replay
        out = []
        for chunk in replay.chunks:  # grad mode is off inside Function.forward
            chunk.cpu_rng, chunk.cuda_rng = _snapshot(replay.model.device)
            out.append(forward(replay.model, chunk.features))
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None]:  # type: ignore[override]
        replay: _Replay = ctx.replay
        start = 0
        for chunk in replay.chunks:
            devices = [] if chunk.cuda_rng is None else [replay.model.device]
            with torch.random.fork_rng(devices=devices), torch.enable_grad(), \
                    torch.autocast(replay.device_type, dtype=replay.autocast_dtype,
                                   enabled=replay.autocast):
                assert chunk.cpu_rng is not None
                torch.set_rng_state(chunk.cpu_rng)
                if chunk.cuda_rng is not None:
                    torch.cuda.set_rng_state(chunk.cuda_rng, replay.model.device)
                emb = forward(replay.model, chunk.features)
                n = emb.shape[0]
                torch.autograd.backward(emb, grad[start:start + n].to(emb.dtype))
            start += n
        ctx.replay = None  # free the features
        return None, None


class CachedInfoNCELoss(PartState):
    """InfoNCE with GradCache: the gradients of the whole batch, the memory of one chunk.

    In-batch negatives get harder and more numerous as the batch grows, but a plain training
    step keeps the activations of every query and document of the batch for backward. GradCache
    splits the step in three:

    1. **Representation pass** (no graph): queries and documents are encoded in chunks of
       ``chunk_size`` texts and only their embeddings are kept.
    2. **Loss and embedding gradients**: the InfoNCE loss is computed on the full batch of
       embeddings (the full ``(B, B·(1+k)+M)`` score matrix, masks and strategies included)
       and backpropagated to the embeddings only.
    3. **Chunked backward**: each chunk is encoded again with a graph and backpropagated with
       its cached embedding gradients, so the parameter gradients are summed chunk by chunk.

    The result equals :class:`~hnm.losses.infonce.InfoNCELoss` on the whole batch: the same loss
    and the same parameter gradients (to float rounding). Each chunk's second pass restores its
    first pass's RNG state, so dropout masks agree. The extra cost is one more forward pass.

    The hook: the module calls ``loss.encode(model, texts)`` instead of its own encoder call
    whenever the loss defines ``encode``. Here ``encode`` returns the no-graph embeddings wired
    into autograd through a custom :class:`torch.autograd.Function` whose backward runs step 3,
    so Lightning's automatic optimisation (``loss.backward()``, gradient clipping, AMP loss
    scaling) works unchanged. The loss math is :class:`InfoNCELoss`, used by composition.

    Args:
        temperature: softmax temperature (as ``infonce``).
        symmetric: add the document->query direction (as ``infonce``).
        symmetric_weight: weight of the symmetric term.
        directions, partition_mode, hardness_mode, hardness_strength: as ``infonce`` (and
            sentence-transformers' ``CachedMultipleNegativesRankingLoss``, which takes the same
            knobs): the loss math is shared, so GradCache changes only how the batch is encoded.
        chunk_size: texts encoded per chunk; peak activation memory scales with it, not with
            the batch. Queries and documents are chunked separately.

    Shapes: ``encode`` returns (n, d) embeddings; ``__call__`` takes a :class:`ScoreContext`
    (``q`` (B, d), ``d`` (N, d), ``mask`` (B, N)) and returns a scalar.

    Paper: Gao, Zhang, Han, Callan, "Scaling Deep Contrastive Learning Batch Size under Memory
    Limited Setup" (RepL4NLP 2021), https://github.com/luyug/GradCache; the same idea as
    sentence-transformers' ``CachedMultipleNegativesRankingLoss``.

    Departures: GradCache runs steps 1-3 inside its own training loop; here step 3 happens
    inside autograd's backward (a reentrant backward, like reentrant activation checkpointing),
    so it composes with Lightning and with every negative strategy. Multi-process training
    (``trainer=ddp``) is refused with a :class:`~hnm.errors.ConfigError` at the first step:
    the chunked backward would run once per chunk inside one DDP step, outside DDP's gradient
    synchronisation (GradCache handles DDP in its own loop); use ``loss=infonce`` there.

    Recommended with: large batches (``batch_size=256`` and up) on limited memory, with any
    sampler and negative strategy; for small batches plain ``infonce`` is faster.
    """

    phases = (Phase.ENCODE, Phase.LOSS)

    def __init__(self, temperature: float = 0.05, symmetric: bool = False,
                 symmetric_weight: float = 1.0, chunk_size: int = 32,
                 directions: Sequence[str] = ("query_to_doc",), partition_mode: str = "joint",
                 hardness_mode: str | None = None, hardness_strength: float = 0.0) -> None:
        check_range("loss.chunk_size", chunk_size, 1)
        self.infonce = InfoNCELoss(temperature, symmetric, symmetric_weight, directions,
                                   partition_mode, hardness_mode, hardness_strength)
        self.chunk_size = int(chunk_size)

    @property
    def temperature(self) -> float:
        return self.infonce.temperature

    def encode(self, model: SentenceTransformer, texts: Sequence[str]) -> Tensor:
        """(n, d) embeddings whose backward re-encodes ``texts`` in chunks (see the class)."""
        texts = list(texts)
        check_single_process()
        if not torch.is_grad_enabled() or not any(p.requires_grad for p in model.parameters()):
            return encode_with_grad(model, texts)
        chunks = [_Chunk(tokenize(model, texts[start:start + self.chunk_size]))
                   for start in range(0, len(texts), self.chunk_size)]
        if not chunks:
            return encode_with_grad(model, texts)
        device = model.device
        replay = _Replay(model, chunks, device.type, torch.is_autocast_enabled(device.type),
                         torch.get_autocast_dtype(device.type))
        anchor = torch.empty(0, device=device, requires_grad=True)
        return _CachedEmbeddings.apply(anchor, replay)

    def per_query(self, ctx: ScoreContext) -> Tensor:
        return self.infonce.per_query(ctx)

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """InfoNCE's weighted mean loss and unweighted (B,) per-query losses, detached."""
        check_single_process()
        return self.infonce.loss_and_per_query(ctx)

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        return self.infonce.effect()


def check_single_process() -> None:
    """Refuse a multi-process run: there each chunk's backward runs inside one DDP step,
    outside the gradient synchronisation DDP expects once per step (unproven, likely wrong)."""
    world, _ = dist_world()
    if world > 1:
        raise ConfigError(
            f"loss=cached_infonce does not support multi-process training (trainer=ddp, world "
            f"size {world}): its chunked re-encoding runs one backward per chunk inside a DDP "
            "step, outside DDP's gradient synchronisation, so the ranks' gradients are not "
            "known to be averaged correctly. Use loss=infonce (lower batch_size per device to "
            "fit memory; the module gathers every rank's embeddings, so each query still sees "
            "the global batch), or train loss=cached_infonce on one device")

