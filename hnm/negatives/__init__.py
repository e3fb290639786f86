"""In-batch negative strategies (``+negatives=NAME``): masks, extra negatives, per-query weights.

Each class reshapes a :class:`~hnm.modules.context.ScoreContext` (``__call__(ctx) -> ctx``);
strategies are applied in the order given on the command line (``+negatives=[gist,queue]``).
Those that are ``nn.Module`` keep state that is checkpointed with the LightningModule, and those
with ``on_step_end(module)`` update it after each optimizer step.
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
