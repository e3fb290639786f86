"""NBPO: the likelihood of the observed labels through label-flip probabilities, so that likely
false negatives among the unlabeled candidates stop being pushed away."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError, check_range
from hnm.state import PartState
from hnm.types import Phase, ScoreContext


class NBPOLoss(PartState):
    """Noisy-label robust point-wise optimisation over in-batch and mined candidates.

    Every candidate of a query is a point with an observed label: ``y = 1`` for its labelled
    positive, ``y = 0`` for every other usable candidate (in-batch documents, mined negatives,
    shared and synthetic extras; masked duplicates and known positives are left out). The model's
    probability that the query truly prefers candidate ``j`` is ``p = sigmoid(s / t + b)``
    (``s`` the score, ``t`` the temperature, ``b`` a bias). Labels flip: a truly relevant
    document is left unlabeled with probability ``eps`` (the flip rate), and a labelled positive
    is truly relevant. The likelihood of the observations is then::

        P(y = 1) = (1 - eps) · p            P(y = 0) = (1 - p) + eps · p

    and the per-query loss is ``-log P(y_pos = 1) - w · mean_j log P(y_j = 0)``. With
    ``eps = 0`` it is plain point-wise optimisation (BPO), whose push on an unlabeled candidate
    grows with its score; with ``eps > 0`` the push on a candidate the model already scores as
    relevant (``p`` near 1) vanishes, because ``eps · p`` explains its missing label: a likely
    false negative stops being pushed away, while moderately scored negatives are still pushed.
    The posterior that an unlabeled candidate is a mislabeled positive,
    ``eps·p / ((1 - p) + eps·p)``, is summed in :meth:`effect` as ``expected_false_negatives``.

    Args:
        temperature: scores are divided by it before the sigmoid (0.05 as ``infonce``).
        bias: ``b``, the logit offset (-10 with ``t = 0.05`` puts ``p = 0.5`` at a score of
            0.5); ``None`` (default) sets it at the first training batch to put ``p = 0.5``
            midway between that batch's mean positive and mean unlabeled score, so that the
            sigmoid starts where this encoder's scores lie (a random encoder scores everything
            near 1, a trained one spreads them).
        learn_bias: train ``b`` with the model (a parameter of the model this loss declares,
            the training module's ``nbpo``).
        flip_rate: ``eps`` in [0, 1): fixed, or the starting value when learned.
        learn_flip: estimate ``eps`` by maximum likelihood with the model
            (``eps = sigmoid(theta)``; needs ``flip_rate > 0``).
        negative_weight: ``w``, the weight of the unlabeled candidates' mean term.

    Shapes: ``ctx.q`` (B, d), ``ctx.d`` (N, d), ``ctx.mask`` (B, N); returns a scalar,
    :meth:`loss_and_per_query` also the unweighted (B,) losses.

    Paper: Yu & Qin, "Sampler Design for Implicit Feedback Data by Noisy-label Robust Learning"
    (SIGIR 2020): Bayesian point-wise optimisation (BPO) and its noisy-label robust form (NBPO)
    for implicit feedback, where unobserved items may be positives missing a label. Departures:
    the paper factorises users and items (matrix factorisation) and estimates the flip
    likelihood with a model of its own per user-item pair; here the preference is the
    bi-encoder's score through a sigmoid with a global bias, and the flip rate is one number for
    the run (fixed, or learned by the same likelihood). The unlabeled points are the batch's
    candidates, not uniformly sampled items; the paper also adapts its sampler to the flip
    estimates, which is not done here (the miner decides the candidates). The learned bias and
    flip rate train at the module's learning rate (``module.lr``), so over a short run they move
    little from their starting values.

    Recommended with a miner whose hard negatives contain unlabeled positives (any dense miner
    on sparsely judged data, e.g. MS MARCO), ``flip_rate`` 0.05-0.3.
    """

    phases = (Phase.LOSS,)
    not_state = ("model",)  # a model it declared: in Lightning's checkpoint

    def __init__(self, temperature: float = 0.05, bias: float | None = None,
                 learn_bias: bool = True,
                 flip_rate: float = 0.1, learn_flip: bool = False,
                 negative_weight: float = 1.0) -> None:
        super().__init__()
        check_range("loss.temperature", temperature, 0.0, low_open=True)
        check_range("loss.flip_rate", flip_rate, 0.0, 1.0, high_open=True)
        check_range("loss.negative_weight", negative_weight, 0.0, low_open=True)
        if learn_flip and float(flip_rate) == 0.0:
            raise ConfigError("loss.learn_flip=true needs loss.flip_rate > 0 as its starting "
                              "value (a rate of 0 is a logit of -inf and cannot be learned)")
        self.temperature = float(temperature)
        self.negative_weight = float(negative_weight)
        theta = math.log(flip_rate / (1 - flip_rate)) if flip_rate > 0 else -math.inf
        self.model = _FlipModel(bias, bool(learn_bias), theta, bool(learn_flip))
        self._served = {"expected_false_negatives": 0.0, "unlabeled_candidates": 0}

    def models(self, encoder: Any, doc_encoder: Any) -> dict[str, torch.nn.Module]:
        """The bias and the flip rate, declared as the training module's ``nbpo``: trained by
        its optimizer, in every checkpoint."""
        return {"nbpo": self.model}

    @property
    def bias(self) -> torch.nn.Parameter:
        return self.model.bias

    @property
    def flip_logit(self) -> torch.nn.Parameter:
        return self.model.flip_logit

    @property
    def bias_set(self) -> Tensor:
        """Whether the bias holds its value (a buffer: a resumed run keeps the one it found)."""
        return self.model.bias_set

    @property
    def flip_rate(self) -> Tensor:
        return torch.sigmoid(self.flip_logit)

    def logits(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """(B, N + m) preference logits ``s / t + b`` and the (B, N + m) bool of the unlabeled
        candidates (usable, not the label column)."""
        usable = ctx.negative_mask()
        with torch.autocast(ctx.q.device.type, enabled=False):
            z = ctx.scores() / self.temperature
            if not bool(self.bias_set):
                self.init_bias(z, usable, ctx)
            if ctx.extra_logits:
                extra = torch.cat([e.float() for e in ctx.extra_logits], dim=1)
                z = torch.cat([z, extra / self.temperature], dim=1)
                usable = torch.cat([usable, torch.ones_like(extra, dtype=torch.bool)], dim=1)
            return z + self.bias.float(), usable

    @torch.no_grad()
    def init_bias(self, z: Tensor, usable: Tensor, ctx: ScoreContext) -> None:
        """``b = -(mean positive logit + mean unlabeled logit) / 2`` of this batch."""
        rows = torch.arange(ctx.batch_size, device=z.device)
        pos = z[rows, ctx.labels].mean()
        neg = z[usable].mean() if bool(usable.any()) else pos
        self.bias.copy_(-(pos + neg) / 2)
        self.bias_set.fill_(True)

    def per_query(self, ctx: ScoreContext) -> Tensor:
        """Unweighted negative log-likelihood of every query's observed labels, shape (B,)."""
        z, unlabeled = self.logits(ctx)
        b = ctx.batch_size
        rows = torch.arange(b, device=z.device)
        eps = self.flip_rate.float().clamp(max=1 - 1e-6)
        log_eps = torch.log(eps) if float(eps) > 0 else torch.full_like(eps, -math.inf)
        z_pos = z[rows, ctx.labels]
        observed_pos = torch.log1p(-eps) + F.logsigmoid(z_pos)
        # log((1 - p) + eps * p) = logaddexp(log sigmoid(-z), log eps + log sigmoid(z))
        observed_neg = torch.logaddexp(F.logsigmoid(-z), log_eps + F.logsigmoid(z))
        observed_neg = torch.where(unlabeled, observed_neg, torch.zeros_like(observed_neg))
        count = unlabeled.sum(dim=1).clamp(min=1)
        loss = -observed_pos - self.negative_weight * observed_neg.sum(dim=1) / count
        with torch.no_grad():
            posterior = torch.exp(log_eps + F.logsigmoid(z) - observed_neg)
            expected = float(posterior[unlabeled].sum())
            self._served["expected_false_negatives"] += expected
            self._served["unlabeled_candidates"] += int(unlabeled.sum())
            ctx.logs["nbpo_expected_false_negatives"] = expected
            ctx.logs["nbpo_flip_rate"] = float(eps)
        return loss

    @torch.no_grad()
    def posterior(self, ctx: ScoreContext) -> Tensor:
        """(B, N + m) probability that each candidate is a relevant document missing its label,
        ``eps·p / ((1 - p) + eps·p)`` (NaN at the label column and masked candidates)."""
        z, unlabeled = self.logits(ctx)
        eps = float(self.flip_rate.clamp(max=1 - 1e-6))
        if eps == 0:
            return torch.where(unlabeled, torch.zeros_like(z), torch.full_like(z, math.nan))
        num = math.log(eps) + F.logsigmoid(z)
        post = torch.exp(num - torch.logaddexp(F.logsigmoid(-z), num))
        return torch.where(unlabeled, post, torch.full_like(z, math.nan))

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[Tensor, Tensor]:
        """The ``ctx.weights``-weighted mean loss and the unweighted (B,) losses, detached."""
        per_query = self.per_query(ctx)
        return (per_query * ctx.weights.to(per_query.dtype)).mean(), per_query.detach()

    def __call__(self, ctx: ScoreContext) -> Tensor:
        return self.loss_and_per_query(ctx)[0]

    def effect(self) -> dict[str, float]:
        """``expected_false_negatives``: the summed posterior that an unlabeled candidate is a
        mislabeled positive (what the flip model excused from being pushed away); the
        ``unlabeled_candidates`` it saw; and the current ``flip_rate`` and ``bias``."""
        return {"expected_false_negatives": float(self._served["expected_false_negatives"]),
                "unlabeled_candidates": float(self._served["unlabeled_candidates"]),
                "flip_rate": float(self.flip_rate.detach()), "bias": float(self.bias.detach())}


class _FlipModel(torch.nn.Module):
    """NBPO's learnable bias ``b`` and flip logit (and whether ``b`` was set yet)."""

    bias_set: Tensor

    def __init__(self, bias: float | None, learn_bias: bool, theta: float,
                 learn_flip: bool) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(0.0 if bias is None else float(bias)),
                                       requires_grad=learn_bias)
        self.register_buffer("bias_set", torch.tensor(bias is not None))
        self.flip_logit = torch.nn.Parameter(torch.tensor(theta), requires_grad=learn_flip)
