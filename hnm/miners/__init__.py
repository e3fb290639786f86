"""Explicit-negative miners (``+miner=NAME``): negatives per training query, with telemetry.

Each miner subclasses :class:`~hnm.miners.base.MinerBase` (the shared filters, pools,
per-epoch sampling and padding) and is registered only by its ``conf/miner/NAME.yaml``.
"""

from hnm.miners.base import Candidates, MinerBase
from hnm.miners.filters import Pool, select

__all__ = ["Candidates", "MinerBase", "Pool", "select"]
