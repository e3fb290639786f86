"""What each configured strategy changed in a run, and the checks that it can change anything.

A strategy that silently does nothing is the worst outcome of an experiment: it looks like a
result. So every configured part (``sampler``, ``miner``, ``negatives/<name>``, ``loss``)
reports cumulative counts of what it changed (:class:`~hnm.types.ReportsEffect`), written to
``metrics.json`` as ``strategy/<part>/<figure>``; ``hnm train`` ends with a visible warning for
a part whose every figure is zero, and refuses before training a configuration that can never
act (:class:`~hnm.types.ChecksSchedule`).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from typing import Any

from hnm.types import ChecksSchedule, ReportsEffect

log = logging.getLogger(__name__)


def run_length(trainer: Any, batches_per_epoch: int) -> tuple[int, int]:
    """(epochs, optimizer steps) the trainer will run, from its limits and the epoch length."""
    accumulate = max(int(getattr(trainer, "accumulate_grad_batches", 1) or 1), 1)
    steps_per_epoch = max(math.ceil(batches_per_epoch / accumulate), 1)
    max_epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
    max_steps = trainer.max_steps if trainer.max_steps not in (None, -1) else None
    if max_epochs is None and max_steps is None:
        max_epochs = 1000  # Lightning's own default when neither limit is set
    epochs_by_steps = math.ceil(max_steps / steps_per_epoch) if max_steps is not None else None
    epochs = min(e for e in (max_epochs, epochs_by_steps) if e is not None)
    steps = epochs * steps_per_epoch if max_steps is None else min(max_steps,
                                                                   epochs * steps_per_epoch)
    return int(epochs), int(steps)


def check_can_act(parts: Mapping[str, Any], trainer: Any, batches_per_epoch: int) -> None:
    """Ask every part that can tell whether it would ever act in a run of this length."""
    epochs, steps = run_length(trainer, batches_per_epoch)
    for part in parts.values():
        if isinstance(part, ChecksSchedule):
            part.check_schedule(epochs, steps)


def effect_metrics(parts: Mapping[str, Any]) -> dict[str, float]:
    """``strategy/<part>/<figure>`` for every part that reports its effect."""
    out: dict[str, float] = {}
    for name, part in parts.items():
        if isinstance(part, ReportsEffect):
            for figure, value in part.effect().items():
                out[f"strategy/{name}/{figure}"] = float(value)
    return out


def no_effect(effects: Mapping[str, float], names: list[str]) -> list[str]:
    """The configured parts (the loss excepted unless it reports) whose figures are all zero."""
    idle = []
    for name in names:
        figures = [v for k, v in effects.items() if k.startswith(f"strategy/{name}/")]
        if figures and all(v == 0 for v in figures):
            idle.append(name)
    return idle


def warn_no_effect(effects: Mapping[str, float], names: list[str]) -> list[str]:
    """Print a visible warning for every configured part that changed nothing."""
    idle = no_effect(effects, names)
    for name in idle:
        figures = ", ".join(f"{k.split('/')[-1]}=0" for k in effects
                            if k.startswith(f"strategy/{name}/"))
        message = (f"WARNING: {name} changed nothing in this run ({figures}): this run "
                   "trained as if it were not configured; check its knobs and the run length")
        log.warning("%s", message)
        print(message, file=sys.stderr)
    return idle
