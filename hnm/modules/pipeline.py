"""The run's parts bound to the phases they declared: who takes part in which phase, in order.

:data:`~hnm.types.phases.PHASES` names the phases of training in the order they run; each part
declares the phases it takes part in (``phases = (Phase.…, …)``). :class:`StepPipeline` checks
those declarations once, when the training module is built, and answers
:meth:`~StepPipeline.at`: the parts of a phase, in the run's order (sampler, miner, in-batch
strategies as configured, loss, then the run's own hooks such as the checkpoint cut). The
training module calls them at their place in the step (:mod:`hnm.modules.retrieval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hnm.types.phases import PHASES, SPECS, Phase

# the phase a part of each role must take part in (or it would do nothing)
ROLE_PHASES: dict[str, tuple[Phase, ...]] = {
    "sampler": (Phase.EPOCH_START, Phase.COMPOSE_BATCH),
    "miner": (Phase.ATTACH_NEGATIVES,),
    "negatives": (Phase.IN_BATCH,),
    "loss": (Phase.LOSS,),
}


def declared_phases(part: Any) -> tuple[Phase, ...]:
    """``part``'s declared phases, checked against its methods.

    Raises :class:`TypeError` when it declares none, declares a phase without the phase's
    methods, or has the method of a phase it does not declare (it would never be called)."""
    name = type(part).__name__
    phases = getattr(part, "phases", None)
    if phases is None:
        raise TypeError(f"{name} declares no phases: give it a class attribute "
                        "'phases = (Phase.…, …)' naming the phases of training it takes part "
                        "in (hnm.types.Phase; see docs/architecture.md)")
    out = tuple(Phase(p) for p in phases)
    for phase in out:
        missing = [h for h in SPECS[phase].hooks if not callable(getattr(part, h, None))]
        if not SPECS[phase].hooks or missing:
            what = (f"has no {', '.join(missing)}" if missing
                    else "cannot take part in it (the module's own phase)")
            raise TypeError(f"{name} declares {phase} but {what}")
    for spec in PHASES:
        if spec.strict and spec.phase not in out and any(callable(getattr(part, h, None))
                                                         for h in spec.hooks):
            raise TypeError(f"{name} has {'/'.join(spec.hooks)} but does not declare "
                            f"{spec.phase}: it would never be called; add it to {name}.phases")
    return out


class StepPipeline:
    """The parts of a run by the phases they declared.

    Args:
        sampler, miner, negatives, loss: the run's strategy parts (the roles of
            :mod:`hnm.types.roles`); each must declare its role's phase (:data:`ROLE_PHASES`).
        hooks: the run's own parts (the checkpoint cut), after the strategies.
    """

    def __init__(self, loss: Any, miner: Any = None, negatives: Sequence[Any] = (),
                 sampler: Any = None, hooks: Sequence[Any] = ()) -> None:
        roles = [("sampler", sampler), ("miner", miner), *(("negatives", s) for s in negatives),
                 ("loss", loss), *(("run", h) for h in hooks)]
        self.parts: list[Any] = []
        self._at: dict[Phase, list[Any]] = {spec.phase: [] for spec in PHASES}
        for role, part in roles:
            if part is None:
                continue
            phases = declared_phases(part)
            lacking = [p for p in ROLE_PHASES.get(role, ()) if p not in phases]
            if lacking:
                raise TypeError(f"{type(part).__name__} is the run's {role} but does not "
                                f"declare {', '.join(map(str, lacking))}")
            self.parts.append(part)
            for phase in phases:
                self._at[phase].append(part)
        for spec in PHASES:
            if spec.single and len(self._at[spec.phase]) > 1:
                names = ", ".join(type(p).__name__ for p in self._at[spec.phase])
                raise TypeError(f"{spec.phase} takes one part, and {names} all declare it")

    def at(self, phase: Phase) -> list[Any]:
        """The parts that take part in ``phase``, in the run's order."""
        return self._at[phase]

    def one(self, phase: Phase) -> Any:
        """The part of a single-part phase, or None."""
        parts = self._at[phase]
        return parts[0] if parts else None
