"""Peak memory of the current process, for the benchmarks under ``scripts/``."""

from __future__ import annotations


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``VmHWM`` on Linux, ``ru_maxrss`` else)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
