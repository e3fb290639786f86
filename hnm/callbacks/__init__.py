"""Lightning callbacks: sampler re-clustering, miner refresh."""

from hnm.callbacks.refresh import MinerRefresh, SamplerRefresh

__all__ = ["MinerRefresh", "SamplerRefresh"]
