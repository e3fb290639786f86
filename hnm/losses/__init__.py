"""Losses: reduce a ScoreContext to a scalar."""

from hnm.losses.cached_infonce import CachedInfoNCELoss
from hnm.losses.infonce import InfoNCELoss, masked_logits
from hnm.losses.kl import KLDistillationLoss
from hnm.losses.margin_mse import MarginMSELoss
from hnm.losses.nbpo import NBPOLoss
from hnm.losses.teacher import TeacherScorer
from hnm.losses.triplet import TripletLoss

__all__ = ["CachedInfoNCELoss", "InfoNCELoss", "KLDistillationLoss", "MarginMSELoss",
           "NBPOLoss", "TeacherScorer", "TripletLoss", "masked_logits"]
