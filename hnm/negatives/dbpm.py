"""Dynamic bad pair mining: down-weight training pairs whose loss marks them as noisy."""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from hnm.errors import ConfigError, check_choice, check_range
from hnm.losses.infonce import masked_logits
from hnm.state import PartState
from hnm.types import Phase, ScoreContext

log = logging.getLogger(__name__)

Weighting = Literal["constant", "gaussian"]
WEIGHTINGS = ("constant", "gaussian")


class DynamicBadPairMining(PartState):
    """Track each training pair's loss; down-weight pairs whose loss is an outlier.

    **History rule (the paper's).** Memory: per training pair (``ctx.pair_idx``) the sum and
    count of its unweighted per-query losses, recorded after the loss (``after_loss``). At the
    first step of each epoch ``e`` the memory is summarised as ``m_i`` = mean historical loss of
    pair ``i`` (epochs before ``e``), with population mean ``mu`` and std ``sigma`` over the
    pairs seen so far. From epoch ``warmup_epochs`` on, a pair with history is *bad* when

    * ``m_i > mu + threshold * sigma`` (high loss: a mislabeled or unanswerable positive, the
      paper's faulty pair and the usual noisy positive of retrieval data), or
    * ``m_i < mu - low_threshold * sigma`` when ``low_threshold`` is set (the paper's noisy pair,
      memorised too easily; off by default: in retrieval, low loss mostly means easy).

    **Within-epoch rule (for runs shorter than the history needs).** A pair is visited once per
    epoch, so in the first ``warmup_epochs`` epochs (all of a 1-epoch run) no pair has history
    when it is trained. With ``within_epoch_warmup`` set, such a pair is judged at its visit by
    its *current* loss ``l_i`` against the ``mu``/``sigma`` of the same quantity over the
    batches trained before (a running history of the population), with the thresholds above,
    from optimizer step ``max(1, ceil(within_epoch_warmup * max_steps))`` on. ``l_i`` is
    needed before the loss runs, so it is the unweighted in-batch InfoNCE of the candidates as
    this strategy sees them (detached, at ``ctx.temperature``), whatever the configured loss.

    Bad pairs get weight ``bad_weight`` (``constant``) or the Gaussian transformation
    ``exp(-(x - mu)^2 / (2 sigma^2))`` in (0, 1] of the value ``x`` they were judged by
    (``gaussian``); the weight multiplies ``ctx.weights``, other pairs are left alone. Nothing
    is judged while the population has fewer than ``min_pairs`` pairs.

    Recording: the module calls ``after_loss(ctx, per_query)`` with the loss's unweighted
    per-query values. A loss that does not report them (``per_query`` None) is covered by the
    InfoNCE per query of the final context (detached, at ``ctx.temperature``); this is visible
    as ``dbpm_loss_fallback`` = 1 in the telemetry and ``fallback_batches``, and logged once.
    Memory and the running population are the strategy's state (``state_dict``: checkpointed,
    restored on ``resume=``).

    ``check_schedule`` refuses a run in which neither rule can ever act (``warmup_epochs`` not
    below the run's epochs and no within-epoch rule, or one that starts after the last step).

    Telemetry: ``dbpm_flagged`` (bad pairs in the batch), ``dbpm_flagged_within`` (of those,
    judged by the within-epoch rule), ``dbpm_mu``, ``dbpm_sigma`` (history statistics),
    ``dbpm_memory`` (pairs with history), ``dbpm_loss_fallback``. Effect: ``pairs_flagged``,
    ``pairs_flagged_within_epoch`` and ``pairs_reweighted`` (visits whose weight moved off 1).

    Args:
        threshold: ``beta`` of the high-loss side (paper's ``beta_fp``).
        low_threshold: ``beta`` of the low-loss side (paper's ``beta_np``); null = off.
        bad_weight: weight of a bad pair under ``constant`` (< 1; 1 would change nothing).
        weighting: ``constant`` | ``gaussian``.
        warmup_epochs: epochs of history before the history rule judges (>= 1; the paper's
            code: 50 of 80 epochs).
        within_epoch_warmup: share of the run's optimizer steps before the within-epoch rule
            judges pairs without history, in [0, 1); null = the history rule only (the paper).
        min_pairs: smallest population for the statistics.

    Reference: Lan et al., "Towards Enhancing Time Series Contrastive Learning: A Dynamic Bad
    Pair Mining Approach", ICLR 2024 (arXiv:2302.03357). Departures: positive pairs are
    (query, document) training pairs rather than two augmented views; ``m_i`` is the plain mean
    of earlier epochs (the authors' code weights epoch ``t`` by ``(1+t)/max_epochs``); bounds
    are strict; the Gaussian weight is unnormalised, in (0, 1], and the history rule evaluates
    it at ``m_i`` (the paper: the normalised pdf at the current loss, which is not known
    before the loss runs); the low-loss side is optional. The within-epoch rule is this
    implementation's addition: the paper warms up for whole epochs and never judges a pair
    without history, which in a 1-epoch run would leave every pair alone. Recommended for
    multi-epoch training on weakly labeled pairs (scraped question/answer or code/docstring
    data).
    """

    phases = (Phase.IN_BATCH, Phase.AFTER_LOSS)

    def __init__(self, threshold: float = 2.0, low_threshold: float | None = None,
                 bad_weight: float = 0.1, weighting: Weighting = "constant",
                 warmup_epochs: int = 1, within_epoch_warmup: float | None = 0.1,
                 min_pairs: int = 8) -> None:
        check_choice("negatives.dbpm.weighting", weighting, WEIGHTINGS)
        check_range("negatives.dbpm.threshold", threshold, 0.0)
        if low_threshold is not None:
            check_range("negatives.dbpm.low_threshold", low_threshold, 0.0)
        check_range("negatives.dbpm.bad_weight", bad_weight, 0.0, 1.0)
        if weighting == "constant" and bad_weight == 1.0:
            raise ConfigError("negatives.dbpm.bad_weight=1.0 with weighting=constant leaves "
                              "every pair's weight at 1: choose bad_weight < 1")
        check_range("negatives.dbpm.warmup_epochs", warmup_epochs, 1)
        if within_epoch_warmup is not None:
            check_range("negatives.dbpm.within_epoch_warmup", within_epoch_warmup, 0.0, 1.0,
                        high_open=True)
        check_range("negatives.dbpm.min_pairs", min_pairs, 2)
        self.threshold = float(threshold)
        self.low_threshold = None if low_threshold is None else float(low_threshold)
        self.bad_weight = float(bad_weight)
        self.weighting = weighting
        self.warmup_epochs = int(warmup_epochs)
        self.within_epoch_warmup = (None if within_epoch_warmup is None
                                    else float(within_epoch_warmup))
        self.min_pairs = int(min_pairs)
        self.loss_sum = torch.zeros(0, dtype=torch.float64)
        self.loss_count = torch.zeros(0, dtype=torch.long)
        self.epochs_seen: set[int] = set()
        self.running = torch.zeros(3, dtype=torch.float64)   # count, sum, sum of squares
        self._epoch: int | None = None
        self._mean: Tensor | None = None            # snapshot m_i at the current epoch's start
        self._stats: tuple[float, float] | None = None
        self.flagged = 0
        self.flagged_within = 0
        self.reweighted = 0
        self.fallback_batches = 0

    # -- what it does in a run ----------------------------------------------------------------
    def effect(self) -> dict[str, float]:
        return {"pairs_flagged": float(self.flagged),
                "pairs_flagged_within_epoch": float(self.flagged_within),
                "pairs_reweighted": float(self.reweighted)}

    def within_start(self, max_steps: int) -> int | None:
        """First optimizer step of the within-epoch rule (None: off)."""
        if self.within_epoch_warmup is None:
            return None
        return max(1, math.ceil(self.within_epoch_warmup * max_steps))

    def check_schedule(self, epochs: int, steps: int) -> None:
        if self.warmup_epochs < epochs:
            return
        start = self.within_start(steps)
        if start is not None and start < steps:
            return
        within = ("the within-epoch rule is off (negatives.dbpm.within_epoch_warmup=null)"
                  if start is None else
                  f"negatives.dbpm.within_epoch_warmup={self.within_epoch_warmup} starts it at "
                  f"step {start}, after the last one")
        raise ConfigError(
            f"negatives.dbpm would never flag a pair in this run of {epochs} epoch(s) and "
            f"{steps} optimizer step(s): negatives.dbpm.warmup_epochs={self.warmup_epochs} "
            f"needs more epochs of loss history than the run has (trainer.max_epochs, "
            f"trainer.max_steps), and {within}. Lower negatives.dbpm.warmup_epochs below the "
            "epochs, raise trainer.max_epochs, or set negatives.dbpm.within_epoch_warmup "
            "(a share of the run, e.g. 0.1)")

    # -- memory -------------------------------------------------------------------------------
    def record(self, pair_idx: Tensor, losses: Tensor, epoch: int) -> None:
        """Add one observation of each pair's loss to the memory."""
        idx = pair_idx.detach().cpu().long()
        vals = losses.detach().cpu().double()
        need = int(idx.max()) + 1 if idx.numel() else 0
        if need > self.loss_sum.numel():
            grow = need - self.loss_sum.numel()
            self.loss_sum = torch.cat([self.loss_sum, torch.zeros(grow, dtype=torch.float64)])
            self.loss_count = torch.cat([self.loss_count, torch.zeros(grow, dtype=torch.long)])
        self.loss_sum.index_add_(0, idx, vals)
        self.loss_count.index_add_(0, idx, torch.ones_like(idx))
        self.epochs_seen.add(int(epoch))

    def snapshot(self, epoch: int) -> None:
        """Summarise the memory at the start of ``epoch`` (history of earlier epochs)."""
        self._epoch = epoch
        seen = self.loss_count > 0
        self._mean = torch.where(seen, self.loss_sum / self.loss_count.clamp(min=1),
                                 torch.full_like(self.loss_sum, float("nan")))
        history = sum(1 for e in self.epochs_seen if e < epoch)
        if int(seen.sum()) < self.min_pairs or history < self.warmup_epochs:
            self._stats = None
            return
        m = self._mean[seen]
        self._stats = (float(m.mean()), float(m.std(unbiased=False)))

    def judge(self, x: Tensor, mu: float, sigma: float) -> tuple[Tensor, Tensor]:
        """(n,) weights and bad flags of values ``x`` (NaN: not judged) against ``mu``/``sigma``."""
        known = ~torch.isnan(x)
        bad = known & (x > mu + self.threshold * sigma)
        if self.low_threshold is not None:
            bad |= known & (x < mu - self.low_threshold * sigma)
        ones = torch.ones_like(x)
        if self.weighting == "constant":
            return torch.where(bad, torch.full_like(x, self.bad_weight), ones), bad
        g = torch.exp(-((x - mu) ** 2) / (2 * max(sigma, 1e-12) ** 2))
        return torch.where(bad, g, ones), bad

    def bad_weights(self, pair_idx: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) weights and (B,) bad flags of the given pairs under the history rule."""
        n = pair_idx.numel()
        if self._stats is None or self._mean is None:
            return torch.ones(n, dtype=torch.float64), torch.zeros(n, dtype=torch.bool)
        return self.judge(self.history_of(pair_idx), *self._stats)

    def history_of(self, pair_idx: Tensor) -> Tensor:
        """(B,) mean historical loss of each pair in the snapshot (NaN: no history)."""
        idx = pair_idx.detach().cpu().long()
        m = torch.full((idx.numel(),), float("nan"), dtype=torch.float64)
        if self._mean is not None:
            inside = idx < self._mean.numel()
            m[inside] = self._mean[idx[inside]]
        return m

    def running_stats(self) -> tuple[float, float] | None:
        """``mu``/``sigma`` of the current losses of the batches trained so far."""
        count, total, squares = (float(v) for v in self.running)
        if count < self.min_pairs:
            return None
        mu = total / count
        return mu, math.sqrt(max(squares / count - mu * mu, 0.0))

    # -- the strategy -------------------------------------------------------------------------
    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        if self._epoch != ctx.epoch:
            self.snapshot(ctx.epoch)
        w, bad = self.bad_weights(ctx.pair_idx)
        within = torch.zeros_like(bad)
        start = self.within_start(ctx.max_steps)
        if start is not None:
            current = _infonce_per_query(ctx).detach().cpu().double()
            stats = self.running_stats()
            if ctx.step >= start and stats is not None:
                judged_by_history = ~torch.isnan(self.history_of(ctx.pair_idx)) \
                    if self._stats is not None else torch.zeros_like(bad)
                w_now, bad_now = self.judge(current, *stats)
                within = bad_now & ~judged_by_history
                w = torch.where(judged_by_history, w, w_now)
                bad = bad | within
            self.running += torch.stack([torch.tensor(float(current.numel()), dtype=torch.float64),
                                         current.sum(), (current ** 2).sum()])
        ctx.weights = ctx.weights * w.to(ctx.weights.device, ctx.weights.dtype)
        self.flagged += int(bad.sum())
        self.flagged_within += int(within.sum())
        self.reweighted += int(((w - 1).abs() > 1e-12).sum())
        ctx.logs["dbpm_flagged"] = float(bad.sum())
        ctx.logs["dbpm_flagged_within"] = float(within.sum())
        ctx.logs["dbpm_memory"] = float((self.loss_count > 0).sum())
        if self._stats is not None:
            ctx.logs["dbpm_mu"], ctx.logs["dbpm_sigma"] = self._stats
        return ctx

    def after_loss(self, ctx: ScoreContext, per_query: object | None) -> None:
        """Record this batch's unweighted per-query losses (the loss's, else InfoNCE's)."""
        if per_query is None:
            losses = _infonce_per_query(ctx)
            if not self.fallback_batches:
                log.warning("negatives.dbpm: the loss does not report per-query values; the "
                            "loss history records DBPM's own InfoNCE per query instead")
            self.fallback_batches += 1
        else:
            losses = torch.as_tensor(per_query).detach().flatten()
            if losses.numel() != ctx.pair_idx.numel():
                raise RuntimeError(f"the loss reported {losses.numel()} per-query values for "
                                   f"a batch of {ctx.pair_idx.numel()} pairs")
        ctx.logs["dbpm_loss_fallback"] = float(per_query is None)
        self.record(ctx.pair_idx, losses, ctx.epoch)


@torch.no_grad()
def _infonce_per_query(ctx: ScoreContext) -> Tensor:
    """Unweighted InfoNCE loss per query of the context (float32, detached)."""
    logits = masked_logits(ctx, ctx.temperature).float()
    return F.cross_entropy(logits, ctx.labels, reduction="none")
