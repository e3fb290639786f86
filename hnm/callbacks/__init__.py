"""Lightning callbacks: sampler re-clustering, miner refresh.

The Hydra callbacks beside them (:mod:`hnm.callbacks.sweep_summary`) are loaded before every
command, so this package imports Lightning only when one of its callbacks is asked for."""

from typing import Any

__all__ = ["MinerRefresh", "SamplerRefresh"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from hnm.callbacks import refresh

        return getattr(refresh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
