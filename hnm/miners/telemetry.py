"""Mining telemetry: how hard the mined negatives are, what the filters removed, time spent.

Returned as a flat ``name -> number`` dict that ``hnm train`` logs as ``mine/<name>`` (and the
refresh callback as ``miner/<name>``) to every Lightning logger, and printed as a table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rich.table import Table

from hnm.miners.filters import Pool
from hnm.report import print_table


def mining_telemetry(pool: Pool, pos_score: np.ndarray, removed: Mapping[str, int],
                     num_negatives: int, quota: int | None = None,
                     timings: Mapping[str, float] | None = None) -> dict[str, float]:
    """Summarise a mining pass.

    Args:
        pool: the per-query pools after filtering.
        pos_score: (nq,) each query's positive score (NaN where unknown).
        removed: the filter counts returned by :func:`hnm.miners.filters.select`.
        num_negatives: negatives per pair.
        quota: how many of them come from the pool (default ``num_negatives``).
        timings: seconds per stage (``encode_s``, ``search_s``, ``filter_s``, …).

    Returns:
        ``queries``, ``short_queries`` (pool < quota), ``empty_queries``, ``pool_mean``, the
        filter counts, ``neg_minus_pos_{mean,p10,p50,p90}`` and ``frac_neg_above_pos`` over
        every pooled candidate whose query has a positive score, and ``time_<stage>``.
    """
    quota = num_negatives if quota is None else quota
    nq = len(pool.count)
    stats: dict[str, float] = {
        "queries": float(nq),
        "short_queries": float((pool.count < quota).sum()),
        "empty_queries": float((pool.count == 0).sum()),
        "pool_mean": float(pool.count.mean()) if nq else 0.0,
    }
    stats.update({k: float(v) for k, v in removed.items()})
    diff = pool.scores - np.asarray(pos_score, dtype=np.float32).reshape(-1, 1)
    diff = diff[np.isfinite(diff)]
    if diff.size:
        p10, p50, p90 = np.percentile(diff, [10, 50, 90])
        stats.update({"neg_minus_pos_mean": float(diff.mean()), "neg_minus_pos_p10": float(p10),
                      "neg_minus_pos_p50": float(p50), "neg_minus_pos_p90": float(p90),
                      "frac_neg_above_pos": float((diff > 0).mean())})
    for k, v in (timings or {}).items():
        stats[f"time_{k}"] = float(v)
    return stats


def telemetry_table(stats: Mapping[str, float], title: str = "mining") -> Table:
    """A compact two-column table of :func:`mining_telemetry`'s figures."""
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in stats.items():
        table.add_row(k, f"{v:.4g}" if not float(v).is_integer() else f"{int(v):,}")
    return table


def print_telemetry(stats: Mapping[str, float], title: str = "mining") -> None:
    print_table(telemetry_table(stats, title))
