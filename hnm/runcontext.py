"""What a run's numbers depend on besides its config: the split and query set it was evaluated
on, the training data it drew, the machine and the load it ran under, and a readable name of its
strategy. Written to ``<run folder>/context.json``; ``hnm compare`` reads it to refuse or warn
about comparisons made under different conditions.
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

CONTEXT_FILE = "context.json"
# the strategy sections of a config, in the order a strategy's name lists them
STRATEGY_GROUPS = ("sampler", "miner", "negatives", "loss", "poison")
DEFAULT_LOSS = "infonce"
DEFAULT_TARGET = "hnm.losses.infonce.InfoNCELoss"


def fingerprint(items: Iterable[str]) -> str:
    """A short stable hash of a sequence of ids (order matters: sort first if it should not)."""
    h = hashlib.sha256()
    for item in items:
        h.update(item.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict[str, Any]:
    """CPU model, cores, torch's threads and the software versions of this process."""
    import torch

    from hnm import __version__

    info: dict[str, Any] = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(), "torch": torch.__version__, "hnm": __version__,
        "host": platform.node(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class LoadMonitor:
    """Samples the machine's 1-minute load average every ``every_s`` seconds in a daemon
    thread, and this process's CPU time between :meth:`start` and :meth:`stop`.

    ``summary()`` gives ``load_mean``/``load_max`` (runnable processes, this one included),
    ``cpu_s``, ``wall_s`` and ``own_load`` (``cpu_s / wall_s``: the cores this process kept
    busy); ``other_load = load_mean - own_load`` estimates what other jobs added. Wall-time
    ratios between runs with different ``other_load`` are not a benchmark.
    """

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = self._cpu0 = 0.0
        self._wall = self._cpu = 0.0

    def _sample(self) -> None:
        try:
            self.samples.append(os.getloadavg()[0])
        except OSError:  # not available on this platform
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def start(self) -> LoadMonitor:
        self._t0, self._cpu0 = time.perf_counter(), cpu_seconds()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="hnm-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._thread = None
        self._sample()
        self._wall = time.perf_counter() - self._t0
        self._cpu = cpu_seconds() - self._cpu0

    def summary(self) -> dict[str, float]:
        if self._thread is not None:  # still running: the figures so far
            wall, cpu = time.perf_counter() - self._t0, cpu_seconds() - self._cpu0
        else:
            wall, cpu = self._wall, self._cpu
        out = {"cpu_s": cpu, "wall_s": wall, "own_load": cpu / wall if wall > 0 else 0.0}
        if self.samples:
            mean = sum(self.samples) / len(self.samples)
            out.update(load_mean=mean, load_max=max(self.samples),
                       other_load=max(0.0, mean - out["own_load"]))
        return out


def option_name(cfg: Mapping[str, Any], group: str, choices: Mapping[str, Any]) -> str | None:
    """The option a run chose for one strategy group: Hydra's choice (``ngame``), else the
    names under ``negatives``, else the class of the group's ``_target_``; None when the group
    is not configured (or is the default loss)."""
    node = cfg.get(group)
    if not node:
        return None
    if group == "negatives":
        names = ([str(node["_target_"]).rsplit(".", 1)[-1]] if "_target_" in node
                 else [str(k) for k, v in node.items() if v is not None])
        return ",".join(names) or None
    choice = choices.get(group)
    target = str(node.get("_target_", group))
    if group == "loss" and (choice == DEFAULT_LOSS or (not choice and target == DEFAULT_TARGET)):
        return None
    return str(choice) if choice else target.rsplit(".", 1)[-1]


def strategy_name(cfg: Mapping[str, Any], choices: Mapping[str, Any] | None = None) -> str:
    """``baseline``, ``sampler=ngame``, ``miner=ance+negatives=gist``: the strategy parts a
    run trained with (the loss only when it is not InfoNCE)."""
    parts = [f"{g}={n}" for g in STRATEGY_GROUPS
             if (n := option_name(cfg, g, choices or {})) is not None]
    return "+".join(parts) or "baseline"


def run_label(strategy: str, seed: Any) -> str:
    """A dashboard name: the strategy's option names and the seed, ``tas_balanced+gist s2``."""
    short = "+".join(p.split("=", 1)[-1] for p in strategy.split("+"))
    return f"{short} s{seed}"


def hydra_choices() -> dict[str, Any]:
    """The config groups' chosen options of the current Hydra job ({} outside Hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return dict(HydraConfig.get().runtime.choices)
    except (ValueError, ImportError):
        return {}


def data_context(data: Any, pairs: Any, split: str, eval_qids: list[str]) -> dict[str, Any]:
    """The data a run trained and was evaluated on, as counts and fingerprints: the corpus
    (document ids), the training pairs drawn (before any poisoning) and the evaluated
    queries of ``split``."""
    return {
        "dataset": data.name, "corpus_docs": len(data.corpus),
        "corpus_fp": fingerprint(sorted(data.corpus)),
        "train_pairs": len(pairs),
        "train_fp": fingerprint(f"{q}\t{d}" for q, d in zip(pairs.qids, pairs.pos_ids)),
        "eval_split": split, "eval_queries": len(eval_qids),
        "eval_fp": fingerprint(sorted(eval_qids)),
    }
