"""The strategy parts of one run: the one list that training, the reports and the checkpoints
share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hnm.types import Stateful


@dataclass
class RunParts:
    """The parts of a run, in the order of the step (``hnm.types.PHASES``).

    Attributes:
        sampler: the batch sampler (the random one when none is configured; under DDP the data
            module trains with a rank-sharded wrapper of this same object).
        loss: the loss.
        miner: the miner (``+miner``, or the batch sampler's own negatives), or None.
        negatives: the in-batch strategies by config name, in the order they apply.
        configured: the names (see :meth:`named`) of the parts the user configured, which
            :meth:`reported` lists: a default random sampler or a sampler's own negatives are
            parts of the run, not strategies to report.
    """

    sampler: Any
    loss: Any
    miner: Any = None
    negatives: dict[str, Any] = field(default_factory=dict)
    configured: tuple[str, ...] = ()

    def named(self) -> dict[str, Any]:
        """Every part by a stable name: ``sampler``, ``miner``, ``negatives/<name>``, ``loss``
        (what a checkpoint holds the state of)."""
        out: dict[str, Any] = {"sampler": self.sampler}
        if self.miner is not None:
            out["miner"] = self.miner
        out.update({f"negatives/{name}": s for name, s in self.negatives.items()})
        out["loss"] = self.loss
        return out

    def reported(self) -> dict[str, Any]:
        """The strategies the user configured and the loss, by report name: ``metrics.json``'s
        ``strategy/<name>/<figure>`` and the checks that each can act in the run."""
        return {name: part for name, part in self.named().items()
                if name in self.configured or name.startswith("negatives/") or name == "loss"}

    def check_stateful(self) -> None:
        """Every part keeps its state across a resume (:class:`~hnm.types.Stateful`)."""
        for name, part in self.named().items():
            if not isinstance(part, Stateful):
                raise TypeError(f"{name} ({type(part).__name__}) has no state_dict/"
                                "load_state_dict, so a resumed run would lose its state: "
                                "inherit hnm.state.PartState, or define both")
