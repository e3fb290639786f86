"""In-batch negative strategies (``+negatives=NAME``): masks, extra negatives, per-query weights.

Each class reshapes a :class:`~hnm.types.ScoreContext` (``__call__(ctx) -> ctx``);
strategies are applied in the order given on the command line (``+negatives=[gist,queue]``).
Those that are ``nn.Module`` keep state that is checkpointed with the LightningModule. Optional
hooks (:mod:`hnm.types`): ``after_loss`` (the loss's per-query values, DBPM),
``on_optimizer_step`` (once per optimizer step, the queue's momentum update), ``on_step_end``
(after every micro-batch, the queue's enqueue), ``frozen_models`` (kept in eval mode),
``effect`` (what it changed, in ``metrics.json``) and ``check_schedule`` (refuse a run in which
it could never act).
"""

from hnm.negatives.dbpm import DynamicBadPairMining
from hnm.negatives.false_negative_mask import FalseNegativeMask
from hnm.negatives.gist import GISTFilter
from hnm.negatives.mochi import MoCHiMixing
from hnm.negatives.prebatch import PreBatchNegatives
from hnm.negatives.progressive import ProgressiveWeighting
from hnm.negatives.queue import MomentumQueue

__all__ = ["DynamicBadPairMining", "FalseNegativeMask", "GISTFilter", "MoCHiMixing",
           "MomentumQueue", "PreBatchNegatives", "ProgressiveWeighting"]
