"""Batch samplers: which training pairs share a batch (and so serve as each other's negatives).

Each is Hydra-instantiated as a partial (``conf/sampler/*.yaml``) and completed by the data
module with ``pairs``, ``batch_size``, ``seed`` and ``drop_last``; see
:class:`hnm.types.BatchSampler`.
"""

from hnm.samplers.clustering import balanced_kmeans, kmeans
from hnm.samplers.ngame import NGAMESampler
from hnm.samplers.random import RandomBatchSampler

__all__ = ["NGAMESampler", "RandomBatchSampler", "balanced_kmeans", "kmeans"]
