"""Losses: reduce a ScoreContext to a scalar."""

from hnm.losses.infonce import InfoNCELoss, masked_logits

__all__ = ["InfoNCELoss", "masked_logits"]
