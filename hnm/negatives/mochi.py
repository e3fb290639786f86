"""MoCHi: synthesise extra hard negatives by mixing the hardest ones (and the query) in."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError, check_range
from hnm.state import PartState
from hnm.types import Phase, ScoreContext

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


class MoCHiMixing(PartState):
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

    Selection, mixing and the mixed logits are computed in float32 outside autocast, as
    ``ScoreContext.scores()`` is: under bf16 mixed precision the logits would be rounded to ~3
    significant digits while the rest of the loss's logits are not. Randomness depends on
    ``(seed, optimizer step, micro-batch within the step)``, so the micro-batches of one step
    under gradient accumulation draw their own mixes.

    Telemetry: ``mochi_mix_score`` (mean ``q·h`` of the pair mixes), ``mochi_query_mix_score``,
    ``mochi_hard_score`` (mean score of the hard set). Effect: ``synthetic_negatives`` (mixed
    logits that reached the loss over the run, those of queries without negatives excepted).

    Args:
        n_hard: size ``N`` of the hard set per query.
        n_mix: pair mixes ``s`` per query.
        n_query_mix: query mixes ``s'`` per query (the paper's MoCHi(N, s, s') settings are in
            the hundreds over a MoCo queue of tens of thousands; a batch needs far fewer).
        beta_max: upper bound of the query's weight ``b`` (paper: 0.5).
        seed: randomness depends on (seed, step, micro-batch of the step) only.

    Reference: Kalantidis et al., "Hard Negative Mixing for Contrastive Learning", NeurIPS 2020.
    Departures: the hard set comes from the batch's candidates (in-batch, explicit negatives and
    any shared extras such as ``queue``) instead of a MoCo queue alone, and pairs ``(i, j)`` are
    drawn with replacement (``i == j`` gives the negative itself). The defaults, MoCHi(8, 4, 0),
    mix pairs of negatives only: a query mix scores near or above the positive when the model
    starts pretrained, and on ``stdlib_code``'s dev split (MiniLM, one epoch, seed 1) the old
    default MoCHi(16, 16, 8) scored -0.048 nDCG@10 against the baseline's seed, MoCHi(8, 4, 1)
    -0.030 and MoCHi(8, 4, 0) -0.005 (3 seeds in the README's defaults table). The paper
    reports MoCHi(N, s, 0) settings too and trains from scratch, where mixing the query in
    helped; set ``n_query_mix`` to try it. Recommended after ``queue``
    or ``prebatch`` (a larger pool to mix) and after ``gist`` (so false negatives are not mixed).
    """

    phases = (Phase.IN_BATCH,)

    def __init__(self, n_hard: int = 8, n_mix: int = 4, n_query_mix: int = 0,
                 beta_max: float = 0.5, seed: int = 0) -> None:
        check_range("negatives.mochi.n_hard", n_hard, 1)
        check_range("negatives.mochi.n_mix", n_mix, 0)
        check_range("negatives.mochi.n_query_mix", n_query_mix, 0)
        if n_mix + n_query_mix == 0:
            raise ConfigError("negatives.mochi.n_mix=0 and negatives.mochi.n_query_mix=0: MoCHi "
                              "would synthesise nothing; set at least one of them >= 1")
        check_range("negatives.mochi.beta_max", beta_max, 0.0, 1.0)
        self.n_hard = int(n_hard)
        self.n_mix = int(n_mix)
        self.n_query_mix = int(n_query_mix)
        self.beta_max = float(beta_max)
        self.seed = int(seed)
        self.synthesized = 0
        self._step: int | None = None
        self._micro = 0

    def effect(self) -> dict[str, float]:
        return {"synthetic_negatives": float(self.synthesized)}

    def generator(self, step: int, micro: int = 0) -> torch.Generator:
        """The generator of micro-batch ``micro`` of optimizer step ``step``."""
        g = torch.Generator(device="cpu")
        g.manual_seed(hash((self.seed, int(step), int(micro))) & (2**63 - 1))
        return g

    def _next_generator(self, step: int) -> torch.Generator:
        self._micro = self._micro + 1 if step == self._step else 0
        self._step = step
        return self.generator(step, self._micro)

    @torch.no_grad()
    def synthesize(self, q: Tensor, d: Tensor, usable: Tensor, gen: torch.Generator) -> Mixes:
        """Mixes of the hardest usable candidates: q (B, dim), d (N, dim), usable (B, N);
        float32, computed outside autocast."""
        with torch.autocast(q.device.type, enabled=False):
            return self._synthesize(q.detach().float(), d.detach().float(), usable, gen)

    def _synthesize(self, q: Tensor, d: Tensor, usable: Tensor, gen: torch.Generator) -> Mixes:
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
        mixes = self.synthesize(ctx.q, ctx.d, ctx.negative_mask(), self._next_generator(ctx.step))
        with torch.autocast(ctx.q.device.type, enabled=False):              # float32 logits
            logits = torch.einsum("bd,bmd->bm", ctx.q.float(), mixes.emb)   # gradient into q only
        logits = logits.masked_fill(~mixes.valid, EMPTY_SCORE)
        ctx.extra_logits.append(logits)
        self.synthesized += int(mixes.valid.sum())
        with torch.no_grad():
            det = logits.detach().float()
            rows = mixes.valid[:, 0]
            if rows.any():
                ctx.logs["mochi_mix_score"] = float(det[rows, :self.n_mix].mean()) \
                    if self.n_mix else float("nan")
                ctx.logs["mochi_query_mix_score"] = float(det[rows, self.n_mix:].mean()) \
                    if self.n_query_mix else float("nan")
                s = ctx.scores().detach()
                hard = s.masked_fill(~ctx.negative_mask(), float("-inf")).topk(
                    min(self.n_hard, s.shape[1]), dim=1).values
                ctx.logs["mochi_hard_score"] = float(hard[torch.isfinite(hard)].mean())
        return ctx
