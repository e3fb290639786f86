"""CET: unlabeled top candidates as negatives, weighted by the probability that they are truly
irrelevant under a selection (pooling) model estimated together with relevance."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import check_range
from hnm.miners.base import Candidates
from hnm.miners.dense_static import DenseStaticMiner
from hnm.miners.filters import Pool
from hnm.types import Phase, ScoreContext


class SelectionRelevance(torch.nn.Module):
    """The two coupled models of CET, over (pooling rank ``ρ`` >= 1, current score ``s``).

    - selection: ``π(ρ) = σ(a − softplus(b)·log ρ)``, the probability that a document at rank
      ``ρ`` of the pooling retriever was shown to the annotators (non-increasing in the rank);
    - relevance: ``p(s) = σ(softplus(α)·(s − c))``, the probability that it is relevant,
      calibrated from the retriever's score.

    A document is labelled positive iff it was selected *and* is relevant:
    ``P(y=1) = π(ρ)·p(s)``; :meth:`nll` is the negative log-likelihood of observed labels and
    :meth:`irrelevant_given_unlabeled` the posterior ``P(r=0 | y=0) = (1−p) / (1 − π·p)``.
    """

    def __init__(self, a: float = 0.0, b: float = 0.5, c: float = 0.5, alpha: float = 10.0
                 ) -> None:
        super().__init__()
        inv = lambda x: float(np.log(np.expm1(max(x, 1e-6))))  # noqa: E731 - softplus⁻¹
        self.a = torch.nn.Parameter(torch.tensor(float(a)))
        self.b = torch.nn.Parameter(torch.tensor(inv(b)))
        self.c = torch.nn.Parameter(torch.tensor(float(c)))
        self.alpha = torch.nn.Parameter(torch.tensor(inv(alpha)))

    def selection_logit(self, rank: Tensor) -> Tensor:
        return self.a - F.softplus(self.b) * torch.log(rank.float().clamp(min=1.0))

    def relevance_logit(self, score: Tensor) -> Tensor:
        return F.softplus(self.alpha) * (score.float() - self.c)

    def nll(self, rank: Tensor, score: Tensor, y: Tensor,
            irrelevant: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood of labels ``y`` (1 labelled, 0 unlabeled) of pooled
        documents, plus that of ``r = 0`` for the scores ``irrelevant`` of anchor documents
        taken as irrelevant (random corpus documents, other queries' positives)."""
        log_py1 = F.logsigmoid(self.selection_logit(rank)) + F.logsigmoid(
            self.relevance_logit(score))
        log_py0 = torch.log1p(-log_py1.exp().clamp(max=1 - 1e-6))
        y = y.float()
        out = -(y * log_py1 + (1 - y) * log_py0).mean()
        if irrelevant is not None and len(irrelevant):
            out = out - F.logsigmoid(-self.relevance_logit(irrelevant)).mean()
        return out

    def irrelevant_given_unlabeled(self, rank: Tensor, score: Tensor) -> Tensor:
        """``P(r=0 | y=0, ρ, s) = (1 − p) / (1 − π·p)`` in [0, 1]."""
        pi = torch.sigmoid(self.selection_logit(rank))
        p = torch.sigmoid(self.relevance_logit(score))
        return ((1 - p) / (1 - pi * p).clamp(min=1e-6)).clamp(0.0, 1.0)


def fit_coupled(model: SelectionRelevance, rank: Tensor, score: Tensor, y: Tensor,
                steps: int = 300, lr: float = 0.05, irrelevant: Tensor | None = None) -> float:
    """Maximum-likelihood fit of both models on observed labels and irrelevant anchors (Adam,
    full batch; see :meth:`SelectionRelevance.nll`); returns the final negative
    log-likelihood. The relevance calibration starts between the mean labelled and mean
    unlabeled score."""
    y = y.float()
    with torch.no_grad():
        pos, neg = score[y > 0], score[y == 0]
        if len(pos) and len(neg):
            model.c.fill_(float((pos.mean() + neg.mean()) / 2))
            spread = float(score.std().clamp(min=1e-3))
            model.alpha.fill_(float(np.log(np.expm1(4.0 / spread))))
    trainable = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    try:
        with torch.enable_grad():
            for _ in range(int(steps)):
                opt.zero_grad()
                loss = model.nll(rank, score, y, irrelevant)
                loss.backward()
                opt.step()
    finally:
        for p, t in zip(model.parameters(), trainable):
            p.requires_grad_(t)
            p.grad = None
    return float(loss.detach())


class CetMiner(DenseStaticMiner):
    """Hard negatives from the pooling retriever's top ranks, each weighted by the estimated
    probability that it is truly irrelevant rather than an unjudged positive.

    The pooling retriever (``encoder``; by default the starting model) ranks the corpus for
    every training query, as in :class:`~hnm.miners.dense_static.DenseStaticMiner`; the rank
    ``ρ`` (1-based, positives included) of every candidate and of every labelled positive is
    kept. Two models are then estimated together by maximum likelihood of the observed labels
    (labelled positives ``y=1``, unlabeled candidates of the window ``y=0``) under CET's
    assumption that a document is labelled iff the annotators were shown it *and* it is
    relevant, ``P(y=1) = π(ρ)·p(s)`` (:class:`SelectionRelevance`), together with
    ``anchors_per_query`` random corpus documents per query taken as irrelevant (``r=0``,
    which pins the relevance calibration: without them "everything relevant, labels explained
    by selection alone" fits the labels as well): a selection model
    ``π(ρ)`` of the pooling rank and a relevance model ``p(s)`` calibrated on the retriever's
    score. At every step each explicit negative gets the weight ``P(r=0 | y=0) = (1−p(s)) /
    (1 − π(ρ)·p(s))`` from the *current* retriever's score ``s`` (detached) and its pooling
    rank ``ρ``, written to ``ctx.candidate_weights``: the loss multiplies its term in the
    softmax denominator by it. An unlabeled document at a top rank that the retriever scores
    like a positive thus counts little (likely unjudged), one at a top rank that it scores
    low counts fully. With ``online=true`` the two models keep being estimated during
    training on each batch's labels (the positive ``y=1``, its explicit negatives ``y=0``,
    the other queries' positives as irrelevant anchors; scores detached, so the retriever is
    unaffected), by the module's optimizer in a
    parameter group of their own (``selection_lr``); this likelihood term is added to the
    step's loss (and to ``train/loss``). The models are declared as the training module's
    ``cet_model`` (in every checkpoint). In-batch negatives (other queries' positives) keep
    weight 1; padded random documents have no pooling rank and get ``ρ =`` the search depth
    plus one.

    :meth:`effect` adds ``negatives_weighted`` (explicit negatives that reached the loss with
    a CET weight), ``negatives_downweighted`` (of them, weight below 0.5) and
    ``weight_mass_removed`` (the sum of ``1 − w``); ``ctx.logs`` carries ``cet_weight_mean``
    and, online, ``cet_nll``.

    Implements CET (Cai et al., CIKM 2022, "Hard Negatives or False Negatives: Correcting
    Pooling Bias in Training Neural Ranking Models"). Simplifications: (1) the relevance
    model of the paper is the neural ranking model's own output probability; here it is a
    two-parameter calibration ``σ(α·(s − c))`` of the retriever's score (the retriever itself
    is trained by the weighted contrastive loss, not by the likelihood); (2) the selection
    model is a two-parameter logistic function of the log pooling rank of one pooling
    retriever (the paper's takes the ranks under the pooling systems as features); (3) the
    pooling retriever is the miner's encoder, by default the starting model, whereas the
    datasets' real pools came from other systems (BM25 for MS MARCO), so ranks and scores are
    strongly correlated at the start and the split between selection and relevance is
    weakly identified until the retriever moves away from the pooling one; (4) the weights
    enter the softmax denominator of the configured loss (the paper weights the negatives'
    terms of its ranking loss); (5) the first estimate is a full-batch fit on the mined pool
    before training, then online updates per batch; (6) random corpus documents (and, online,
    other queries' positives) are taken as irrelevant anchors of the relevance model, where
    the paper relies on the ranking model's own negative sampling.

    Args:
        fit_steps, fit_lr: Adam iterations and learning rate of the fit before training.
        online: keep estimating the two models during training (see above).
        selection_lr: learning rate of their parameter group when ``online``.
        weight_floor: lower bound of a negative's weight, in [0, 1).
        anchors_per_query: random corpus documents per query taken as irrelevant in the fit.
        **kwargs: the knobs of :class:`DenseStaticMiner` (``encoder``, ``num_negatives``,
            ``range_max``, …).

    Recommended with InfoNCE over in-batch plus mined negatives, a window of the top 30–100
    ranks (``range_max``; the deeper it is, the more unlabeled documents inform the
    selection model) and ``sampling_strategy=random``.
    """

    phases = (Phase.ATTACH_NEGATIVES, Phase.SHAPE_CONTEXT, Phase.OBJECTIVE)
    not_state = ("model",)  # models it holds, not its state (hnm.state)

    def __init__(self, fit_steps: int = 300, fit_lr: float = 0.05, online: bool = True,
                 selection_lr: float = 1e-2, weight_floor: float = 0.0,
                 anchors_per_query: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_range("miner.anchors_per_query", anchors_per_query, 1)
        self.anchors_per_query = int(anchors_per_query)
        self._anchor_scores = np.zeros(0, dtype=np.float32)
        check_range("miner.fit_steps", fit_steps, 0)
        check_range("miner.fit_lr", fit_lr, 0.0, low_open=True)
        check_range("miner.selection_lr", selection_lr, 0.0, low_open=True)
        check_range("miner.weight_floor", weight_floor, 0.0, 1.0, high_open=True)
        self.fit_steps, self.fit_lr = int(fit_steps), float(fit_lr)
        self.online, self.selection_lr = bool(online), float(selection_lr)
        self.weight_floor = float(weight_floor)
        self.model = SelectionRelevance()
        self.model.requires_grad_(self.online)
        self.fit_nll = float("nan")
        self._rank: dict[tuple[int, int], int] = {}
        self._beyond = 1_000_000  # set by the first search
        self._batch: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        self._cet = {"negatives_weighted": 0, "negatives_downweighted": 0}
        self._mass_removed = 0.0

    def models(self, encoder: Any, doc_encoder: Any) -> dict[str, Any]:
        """The selection and relevance models, declared as the training module's
        ``cet_model``."""
        return {"cet_model": self.model}

    def param_groups(self) -> list[dict[str, Any]]:
        """The two models' parameters, at ``selection_lr`` without weight decay (none
        without ``online``: they are frozen after the fit)."""
        if not self.online:
            return []
        return [{"params": list(self.model.parameters()), "lr": self.selection_lr,
                 "weight_decay": 0.0}]

    # -- mining: ranks, then the coupled fit ------------------------------------------------
    def filter(self, cands: Candidates) -> tuple[Pool, dict[str, int]]:
        """The shared filters, keeping the pooling rank of every candidate."""
        rows, cols = np.nonzero(cands.idx >= 0)
        self._beyond = int(cands.idx.shape[1]) + 1
        self._rank = {(int(q), int(d)): int(c) + 1
                      for q, d, c in zip(rows, cands.idx[rows, cols], cols)}
        return super().filter(cands)

    @property
    def beyond(self) -> int:
        """The rank given to documents the pooling retriever did not return (the search
        depth plus one)."""
        return self._beyond

    def rank_of(self, q: int, d: int) -> int:
        return self._rank.get((q, d), self.beyond)

    def dense_candidates(self, q_emb: np.ndarray, d_emb: np.ndarray, k: int) -> Candidates:
        """The shared dense search, plus the pooling scores of ``anchors_per_query`` random
        corpus documents per query (taken as irrelevant by the fit)."""
        cands = super().dense_candidates(q_emb, d_emb, k)
        n = self.anchors_per_query
        rng = np.random.default_rng((self.seed, 7))
        rows = np.repeat(np.arange(len(q_emb)), n)
        docs = rng.integers(0, len(d_emb), size=len(rows))
        keep = ~self.positive_mask(docs[:, None], rows)[:, 0]
        self._anchor_scores = np.einsum("ij,ij->i", q_emb[rows[keep]],
                                        d_emb[docs[keep]]).astype(np.float32)
        return cands

    def mine(self, data: Any, pairs: Any, embed_queries: Any, embed_docs: Any
             ) -> dict[str, float]:
        stats = super().mine(data, pairs, embed_queries, embed_docs)
        rank, score, y = self.pool_labels()
        if len(y) and self.fit_steps:
            self.fit_nll = fit_coupled(self.model, rank, score, y, self.fit_steps, self.fit_lr,
                                       torch.as_tensor(self._anchor_scores))
        stats = dict(stats)
        stats["cet_fit_nll"] = self.fit_nll
        stats["cet_selection_top"] = float(torch.sigmoid(
            self.model.selection_logit(torch.tensor(1.0))).detach())
        return stats

    def pool_labels(self) -> tuple[Tensor, Tensor, Tensor]:
        """(ranks, starting scores, labels) of every labelled positive and pool candidate."""
        assert self.pool is not None
        q, c = np.nonzero(self.pool.idx >= 0)
        d = self.pool.idx[q, c]
        ranks = [self.rank_of(int(a), int(b)) for a, b in zip(q, d)]
        ranks += [self.rank_of(int(a), int(b)) for a, b in zip(self.pos_q, self.pos_d)]
        scores = np.concatenate([self.pool.scores[q, c], np.asarray(self.pos_scores)])
        y = np.concatenate([np.zeros(len(q)), np.ones(len(self.pos_q))])
        ok = np.isfinite(scores)
        return (torch.tensor(np.asarray(ranks)[ok], dtype=torch.float32),
                torch.tensor(scores[ok], dtype=torch.float32),
                torch.tensor(y[ok], dtype=torch.float32))

    # -- training: weights into the context, the coupled likelihood into the loss -----------
    def shape_context(self, ctx: ScoreContext) -> ScoreContext:
        """Put each explicit negative's ``P(r=0 | y=0)`` into ``ctx.candidate_weights``."""
        b, k = ctx.batch_size, ctx.num_negatives
        if k == 0 or self.pool is None:
            return ctx
        dev = ctx.mask.device
        rows = torch.arange(b, device=dev)
        cols = b + rows[:, None] * k + torch.arange(k, device=dev)[None, :]
        qrow = {q: i for i, q in enumerate(self.qids)}
        qr = [qrow.get(q, -1) for q in ctx.qids]
        rank = torch.tensor([[self.rank_of(qr[i], self.doc_row.get(ctx.doc_ids[int(c)], -1))
                              for c in cols[i].tolist()] for i in range(b)],
                            dtype=torch.float32, device=dev)
        pos_rank = torch.tensor([self.rank_of(qr[i], self.doc_row.get(ctx.pos_ids[i], -1))
                                 for i in range(b)], dtype=torch.float32, device=dev)
        with torch.no_grad():
            s = ctx.scores().detach()
            neg_s = s[rows[:, None], cols]
            pos_s = s[rows, ctx.labels]
            w = self.model.irrelevant_given_unlabeled(rank, neg_s).clamp(min=self.weight_floor)
        usable = ~ctx.mask[rows[:, None], cols]
        weights = torch.ones(b, ctx.d.shape[0], device=dev) if ctx.candidate_weights is None \
            else ctx.candidate_weights.clone()
        weights[rows[:, None], cols] = weights[rows[:, None], cols] * w.to(weights.dtype)
        ctx.candidate_weights = weights
        n = int(usable.sum())
        self._cet["negatives_weighted"] += n
        self._cet["negatives_downweighted"] += int((usable & (w < 0.5)).sum())
        self._mass_removed += float(((1 - w) * usable).sum())
        ctx.logs["cet_weight_mean"] = float(w[usable].mean()) if n else 1.0
        others = ~ctx.mask[:, :b] & ~torch.eye(b, dtype=torch.bool, device=dev)
        self._batch = (torch.cat([pos_rank, rank[usable]]),
                       torch.cat([pos_s, neg_s[usable]]),
                       torch.cat([torch.ones(b, device=dev), torch.zeros(n, device=dev)]),
                       s[:, :b][others])  # other queries' positives: irrelevant anchors
        return ctx

    def joint_loss(self, ctx: ScoreContext, loss: Tensor) -> Tensor:
        """With ``online``: the loss plus the coupled likelihood of this batch's labels
        (gradient into the selection and relevance models only)."""
        if not self.online or self._batch is None:
            return loss
        rank, score, y, anchors = self._batch
        self._batch = None
        nll = self.model.nll(rank, score.detach(), y, anchors.detach())
        ctx.logs["cet_nll"] = float(nll.detach())
        return loss + nll

    # -- what it changed, what it holds -----------------------------------------------------
    def effect(self) -> dict[str, float]:
        return {**super().effect(), **{k: float(v) for k, v in self._cet.items()},
                "weight_mass_removed": float(self._mass_removed)}
