"""MoCHi: synthesise extra hard negatives by mixing the hardest ones (and the query) in."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.modules.context import ScoreContext

# raw score of a synthetic negative a query could not build (no usable negatives): never wins
EMPTY_SCORE = -1.0e4


@dataclass
class Mixes:
    """Synthetic negatives of one batch and how they were built (for tests and telemetry).

    ``emb`` (B, m, d) L2-normalised mixes, first ``n_mix`` pair mixes then ``n_query_mix`` query
    mixes; ``first``/``second`` (B, m) candidate columns mixed (``first`` is -1 for a query mix,
    whose first term is the query); ``coef`` (B, m) weight of the first term; ``valid`` (B, m).
    """

    emb: Tensor
    first: Tensor
    second: Tensor
    coef: Tensor
    valid: Tensor


class MoCHiMixing:
    """Hard negative mixing (MoCHi) over the batch's candidate documents.

    Per query ``q`` (raw scores ``s = q·d``, no gradient used for the selection):

    1. take the ``n_hard`` usable negatives with the highest score (masked candidates and the
       label are never used: a false negative masked by ``gist`` is not mixed in);
    2. ``n_mix`` pair mixes: ``h = a·n_i + (1-a)·n_j``, ``a ~ U(0, 1)``, ``n_i, n_j`` drawn
       uniformly from the hard set, then ``h / ||h||``;
    3. ``n_query_mix`` query mixes: ``h' = b·q + (1-b)·n_j``, ``b ~ U(0, beta_max)`` so the
       negative dominates, then normalised.

    The mixes are appended as ``ctx.extra_logits`` ``(B, n_mix + n_query_mix)`` = ``q · h`` with
    the mixes detached: the gradient flows into the query only, as in the paper. Queries with
    no usable negative get a score of -1e4 in those columns (no effect on the loss).

    Telemetry: ``mochi_mix_score`` (mean ``q·h`` of the pair mixes), ``mochi_query_mix_score``,
    ``mochi_hard_score`` (mean score of the hard set).

    Args:
        n_hard: size ``N`` of the hard set per query.
        n_mix: pair mixes ``s`` per query.
        n_query_mix: query mixes ``s'`` per query (the paper's MoCHi(N, s, s') settings are in
            the hundreds over a MoCo queue of tens of thousands; a batch needs far fewer).
        beta_max: upper bound of the query's weight ``b`` (paper: 0.5).
        seed: randomness depends on (seed, step) only.

    Reference: Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020.
    Departures: the hard set comes from the batch's candidates (in-batch, explicit negatives and
    any shared extras such as ``queue``) instead of a MoCo queue alone, and pairs ``(i, j)`` are
    drawn with replacement (``i == j`` gives the negative itself). Recommended after ``queue``
    or ``prebatch`` (a larger pool to mix) and after ``gist`` (so false negatives are not mixed).
    """

    def __init__(self, n_hard: int = 16, n_mix: int = 16, n_query_mix: int = 8,
                 beta_max: float = 0.5, seed: int = 0) -> None:
        if n_hard < 1:
            raise ValueError(f"negatives.mochi.n_hard must be >= 1, got {n_hard}")
        if n_mix < 0 or n_query_mix < 0 or n_mix + n_query_mix == 0:
            raise ValueError("negatives.mochi: n_mix and n_query_mix must be >= 0 and not both 0,"
                             f" got {n_mix}, {n_query_mix}")
        if not 0.0 <= beta_max <= 1.0:
            raise ValueError(f"negatives.mochi.beta_max must be in [0, 1], got {beta_max}")
        self.n_hard = n_hard
        self.n_mix = n_mix
        self.n_query_mix = n_query_mix
        self.beta_max = beta_max
        self.seed = seed

    def generator(self, step: int) -> torch.Generator:
        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed * 1_000_003 + step)
        return g

    @torch.no_grad()
    def synthesize(self, q: Tensor, d: Tensor, usable: Tensor, gen: torch.Generator) -> Mixes:
        """Mixes of the hardest usable candidates: q (B, dim), d (N, dim), usable (B, N)."""
        q, d = q.detach().float(), d.detach().float()
        b, dev = q.shape[0], q.device
        scores = (q @ d.T).masked_fill(~usable, float("-inf"))
        k = min(self.n_hard, d.shape[0])
        top_s, top_i = scores.topk(k, dim=1)                           # (B, k) hardest first
        n_avail = torch.isfinite(top_s).sum(1)                        # (B,)
        avail = n_avail.clamp(min=1).float()

        def draw(m: int) -> Tensor:  # uniform positions within each query's hard set
            u = torch.rand(b, m, generator=gen).to(dev)
            return top_i.gather(1, (u * avail[:, None]).long().clamp(max=k - 1))

        firsts, seconds, coefs, embs = [], [], [], []
        if self.n_mix:
            i, j = draw(self.n_mix), draw(self.n_mix)
            a = torch.rand(b, self.n_mix, generator=gen).to(dev)
            embs.append(a[..., None] * d[i] + (1 - a[..., None]) * d[j])
            firsts.append(i)
            seconds.append(j)
            coefs.append(a)
        if self.n_query_mix:
            j = draw(self.n_query_mix)
            beta = self.beta_max * torch.rand(b, self.n_query_mix, generator=gen).to(dev)
            embs.append(beta[..., None] * q[:, None, :] + (1 - beta[..., None]) * d[j])
            firsts.append(torch.full_like(j, -1))
            seconds.append(j)
            coefs.append(beta)
        emb = F.normalize(torch.cat(embs, dim=1), dim=-1)
        valid = (n_avail > 0)[:, None].expand(b, emb.shape[1])
        return Mixes(emb, torch.cat(firsts, 1), torch.cat(seconds, 1), torch.cat(coefs, 1),
                     valid)

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        mixes = self.synthesize(ctx.q, ctx.d, ctx.negative_mask(), self.generator(ctx.step))
        mix = mixes.emb.to(ctx.q.dtype)
        logits = torch.einsum("bd,bmd->bm", ctx.q, mix)                 # gradient into q only
        logits = logits.masked_fill(~mixes.valid, EMPTY_SCORE)
        ctx.extra_logits.append(logits)
        with torch.no_grad():
            det = logits.detach().float()
            rows = mixes.valid[:, 0]
            if rows.any():
                ctx.logs["mochi_mix_score"] = float(det[rows, :self.n_mix].mean()) \
                    if self.n_mix else float("nan")
                ctx.logs["mochi_query_mix_score"] = float(det[rows, self.n_mix:].mean()) \
                    if self.n_query_mix else float("nan")
                s = (ctx.q.detach() @ ctx.d.detach().T).float()
                hard = s.masked_fill(~ctx.negative_mask(), float("-inf")).topk(
                    min(self.n_hard, s.shape[1]), dim=1).values
                ctx.logs["mochi_hard_score"] = float(hard[torch.isfinite(hard)].mean())
        return ctx
