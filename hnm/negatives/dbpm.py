"""Dynamic bad pair mining: down-weight training pairs whose loss history marks them as noisy."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hnm.losses.infonce import masked_logits
from hnm.modules.context import ScoreContext

Weighting = Literal["constant", "gaussian"]
WEIGHTINGS = ("constant", "gaussian")


class DynamicBadPairMining(nn.Module):
    """Track each training pair's loss over epochs; down-weight pairs that are outliers.

    Memory: per training pair (``ctx.pair_idx``) the sum and count of its per-query losses.
    At the first step of each epoch ``e`` the memory is summarised as ``m_i`` = mean historical
    loss of pair ``i`` (epochs before ``e``), with population mean ``mu`` and std ``sigma`` over
    the pairs seen so far. During epoch ``e`` a pair is *bad* when

    * ``m_i > mu + threshold * sigma`` (high loss: a mislabeled or unanswerable positive, the
      paper's faulty pair and the usual noisy positive of retrieval data), or
    * ``m_i < mu - low_threshold * sigma`` when ``low_threshold`` is set (the paper's noisy pair,
      memorised too easily; off by default: in retrieval, low loss mostly means easy).

    Bad pairs get weight ``bad_weight`` (``constant``) or the paper's Gaussian transformation
    ``exp(-(m_i - mu)^2 / (2 sigma^2))`` (``gaussian``, in (0, 1]); the weight multiplies
    ``ctx.weights``, other pairs are left alone. Nothing is flagged before ``warmup_epochs``
    epochs of history or with fewer than ``min_pairs`` pairs in memory.

    Recording: the loss writes its unweighted per-query losses to ``ctx.state["per_query_loss"]``
    *after* the strategies run, so the strategy keeps this batch's ``ctx.state`` (the same dict
    the loss writes to) and its ``pair_idx``, and reads the losses in ``on_step_end``. A loss
    that does not write them is covered by an InfoNCE per-query loss computed from the kept
    context (detached, at ``ctx.temperature``). Memory is the module's *extra state*
    (checkpointed; restored on ``resume=``).

    Telemetry: ``dbpm_flagged`` (bad pairs in the batch), ``dbpm_mu``, ``dbpm_sigma``,
    ``dbpm_memory`` (pairs with history).

    Args:
        threshold: ``beta`` of the high-loss side (paper's ``beta_fp``).
        low_threshold: ``beta`` of the low-loss side (paper's ``beta_np``); null = off.
        bad_weight: weight of a bad pair under ``constant``.
        weighting: ``constant`` | ``gaussian``.
        warmup_epochs: epochs of history before flagging (paper: flags from the 2nd epoch).
        min_pairs: smallest memory population for the statistics.

    Reference: Lan et al., "Towards Enhancing Time Series Contrastive Learning: A Dynamic Bad
    Pair Mining Approach", ICLR 2024 (arXiv:2302.03357). Departures: positive pairs are
    (query, document) training pairs rather than two augmented views; the Gaussian weight is
    unnormalised and evaluated at the pair's historical mean (the paper uses the current loss
    and the normalised pdf, which the loss value is not known for when strategies run); the
    low-loss side is optional. Recommended for multi-epoch training on weakly labeled pairs
    (scraped question/answer or code/docstring data).
    """

    def __init__(self, threshold: float = 2.0, low_threshold: float | None = None,
                 bad_weight: float = 0.1, weighting: Weighting = "constant",
                 warmup_epochs: int = 1, min_pairs: int = 8) -> None:
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"negatives.dbpm.weighting={weighting!r}: choose one of "
                             f"{', '.join(WEIGHTINGS)}")
        if threshold < 0 or (low_threshold is not None and low_threshold < 0):
            raise ValueError("negatives.dbpm: thresholds must be >= 0")
        if not 0.0 <= bad_weight <= 1.0:
            raise ValueError(f"negatives.dbpm.bad_weight must be in [0, 1], got {bad_weight}")
        self.threshold = threshold
        self.low_threshold = low_threshold
        self.bad_weight = bad_weight
        self.weighting = weighting
        self.warmup_epochs = warmup_epochs
        self.min_pairs = min_pairs
        self.loss_sum = torch.zeros(0, dtype=torch.float64)
        self.loss_count = torch.zeros(0, dtype=torch.long)
        self.epochs_seen: set[int] = set()
        self._epoch: int | None = None
        self._mean: Tensor | None = None            # snapshot m_i at the current epoch's start
        self._stats: tuple[float, float] | None = None
        self._pending: tuple[Tensor, dict[str, Any], ScoreContext] | None = None

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
        if int(seen.sum()) < max(self.min_pairs, 2) or history < self.warmup_epochs:
            self._stats = None
            return
        m = self._mean[seen]
        self._stats = (float(m.mean()), float(m.std(unbiased=False)))

    def bad_weights(self, pair_idx: Tensor) -> tuple[Tensor, Tensor]:
        """(B,) weights and (B,) bad flags of the given pairs under the current snapshot."""
        n = pair_idx.numel()
        ones = torch.ones(n, dtype=torch.float64)
        if self._stats is None or self._mean is None:
            return ones, torch.zeros(n, dtype=torch.bool)
        mu, sigma = self._stats
        idx = pair_idx.detach().cpu().long()
        m = torch.full((n,), float("nan"), dtype=torch.float64)
        inside = idx < self._mean.numel()
        m[inside] = self._mean[idx[inside]]
        known = ~torch.isnan(m)
        bad = known & (m > mu + self.threshold * sigma)
        if self.low_threshold is not None:
            bad |= known & (m < mu - self.low_threshold * sigma)
        if self.weighting == "constant":
            w = torch.where(bad, torch.full_like(m, self.bad_weight), ones)
        else:
            g = torch.exp(-((m - mu) ** 2) / (2 * max(sigma, 1e-12) ** 2))
            w = torch.where(bad, g, ones)
        return w, bad

    # -- the strategy -------------------------------------------------------------------------
    def forward(self, ctx: ScoreContext) -> ScoreContext:
        if self._epoch != ctx.epoch:
            self.snapshot(ctx.epoch)
        w, bad = self.bad_weights(ctx.pair_idx)
        ctx.weights = ctx.weights * w.to(ctx.weights.device, ctx.weights.dtype)
        ctx.logs["dbpm_flagged"] = float(bad.sum())
        ctx.logs["dbpm_memory"] = float((self.loss_count > 0).sum())
        if self._stats is not None:
            ctx.logs["dbpm_mu"], ctx.logs["dbpm_sigma"] = self._stats
        self._pending = (ctx.pair_idx.detach().clone(), ctx.state, ctx)
        return ctx

    def on_step_end(self, module: Any = None) -> None:
        if self._pending is None:
            return
        pair_idx, state, ctx = self._pending
        self._pending = None
        losses = state.get("per_query_loss")
        if losses is None or losses.numel() != pair_idx.numel():
            losses = _infonce_per_query(ctx)
        self.record(pair_idx, losses, ctx.epoch)

    # -- checkpointing ------------------------------------------------------------------------
    def get_extra_state(self) -> dict[str, Any]:
        return {"sum": self.loss_sum.clone(), "count": self.loss_count.clone(),
                "epochs": sorted(self.epochs_seen)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.loss_sum = state.get("sum", torch.zeros(0, dtype=torch.float64))
        self.loss_count = state.get("count", torch.zeros(0, dtype=torch.long))
        self.epochs_seen = set(state.get("epochs", []))
        self._epoch = None


@torch.no_grad()
def _infonce_per_query(ctx: ScoreContext) -> Tensor:
    """Unweighted InfoNCE loss per query, for losses that do not report ``per_query_loss``."""
    logits = masked_logits(ctx, ctx.temperature).float()
    return F.cross_entropy(logits, ctx.labels, reduction="none")
