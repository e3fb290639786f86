"""In-batch negative strategies (``+negatives=NAME``): masks, extra negatives, per-query weights.

Each class reshapes a :class:`~hnm.types.ScoreContext` (``__call__(ctx) -> ctx``, the
``IN_BATCH`` phase); strategies are applied in the order given on the command line
(``+negatives=[gist,queue]``). Each declares the phases it takes part in (``phases``): besides
``IN_BATCH``, ``AFTER_LOSS`` (the loss's per-query values, DBPM), ``OPTIMIZER_STEP`` (once per
optimizer step, the queue's momentum update) and ``STEP_END`` (after every micro-batch, the
queue's enqueue). Optional capabilities (:mod:`hnm.types`): ``models`` (a model of its own,
the queue's key encoder), ``frozen_models`` (kept in eval mode), ``effect`` (what it changed,
in ``metrics.json``), ``check_schedule`` (refuse a run in which it could never act) and
``state_dict`` (kept across a resume, from :class:`hnm.state.PartState`).
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
