"""The phases of training, in the order they run: hnm's real API for a strategy.

A part says which phases it takes part in with a class attribute ``phases``; the training
module (:class:`~hnm.modules.pipeline.StepPipeline`) calls each phase's hook on the parts that
declared it, in the order of :data:`PHASES`, and within a phase in the order of the run's parts
(sampler, miner, in-batch strategies as configured, loss). A part that declares a phase without
its hook, or has a phase's hook without declaring the phase (it would never be called), is
refused when the module is built. ``docs/architecture.md`` shows the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    """One phase of training (see :data:`PHASES` for who takes part and what it does)."""

    EPOCH_START = "epoch_start"
    BEFORE_STEP = "before_step"
    COMPOSE_BATCH = "compose_batch"
    ATTACH_NEGATIVES = "attach_negatives"
    ENCODE = "encode"
    GATHER = "gather"
    SHAPE_CONTEXT = "shape_context"
    IN_BATCH = "in_batch"
    LOSS = "loss"
    AFTER_LOSS = "after_loss"
    OBJECTIVE = "objective"
    OBSERVE = "observe"
    OPTIMIZER_STEP = "optimizer_step"
    STEP_END = "step_end"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class PhaseSpec:
    """A phase: the methods a part defines to take part in it, and what it does.

    Attributes:
        phase: the phase.
        hooks: the methods a part that declares the phase must have (empty: only the module
            acts, no part can declare it).
        protocol: the Protocol of :mod:`hnm.types` those methods make up.
        single: at most one part of a run may take part (the batch's composer, its miner, the
            encoding, the loss).
        strict: the hooks are this phase's alone, so a part that has them without declaring
            the phase is refused too (``refresh`` or ``__call__`` serve several phases).
        what: one line on what happens.
    """

    phase: Phase
    hooks: tuple[str, ...]
    protocol: str
    single: bool
    strict: bool
    what: str


PHASES: tuple[PhaseSpec, ...] = (
    PhaseSpec(Phase.EPOCH_START, ("set_epoch", "needs_refresh", "refresh"), "BatchSampler",
              False, False, "before an epoch's first batch: the sampler's epoch, and a refresh with "
              "the current encoder when it asks (NGAME's clusters)"),
    PhaseSpec(Phase.BEFORE_STEP, ("needs_refresh", "refresh"), "RefreshesBeforeStep", False, False,
              "before the first micro-batch of an optimizer step: a re-mining with the current "
              "encoder when the part asks (ANCE)"),
    PhaseSpec(Phase.COMPOSE_BATCH, ("__iter__", "__len__"), "BatchSampler", True, False,
              "the sampler composes the batch (its pair indices)"),
    PhaseSpec(Phase.ATTACH_NEGATIVES, ("negatives",), "Miner", True, False,
              "the miner attaches num_negatives explicit negatives per pair (and teacher "
              "scores)"),
    PhaseSpec(Phase.ENCODE, ("encode",), "EncodingLoss", True, True,
              "queries, positives and negatives are encoded (by the loss when it encodes "
              "itself, GradCache)"),
    PhaseSpec(Phase.GATHER, (), "-", False, False,
              "the module: every rank's batch gathered into the ScoreContext, known positives "
              "masked"),
    PhaseSpec(Phase.SHAPE_CONTEXT, ("shape_context",), "ShapesContext", False, True,
              "a miner reshapes the context (CET's per-negative weights)"),
    PhaseSpec(Phase.IN_BATCH, ("__call__",), "NegativeStrategy", False, False,
              "the in-batch strategies, in the configured order: masks, extra candidates, "
              "weights"),
    PhaseSpec(Phase.LOSS, ("__call__",), "Loss", True, False,
              "the loss reduces the context (with unweighted per-query values when it reports "
              "them)"),
    PhaseSpec(Phase.AFTER_LOSS, ("after_loss",), "AfterLoss", False, True,
              "parts that need the per-query losses of the batch they shaped (DBPM)"),
    PhaseSpec(Phase.OBJECTIVE, ("joint_loss",), "JointObjective", False, True,
              "parts with a model of their own turn the loss into the step's objective (AR2, "
              "CET)"),
    PhaseSpec(Phase.OBSERVE, (), "-", False, False,
              "the module: the loss, learning rate and telemetry logged; observers (the effect "
              "tests) see what reached the loss"),
    PhaseSpec(Phase.OPTIMIZER_STEP, ("on_optimizer_step",), "OptimizerStepHook", False, True,
              "after backward and the optimizer step, once per optimizer step (the queue's "
              "momentum update)"),
    PhaseSpec(Phase.STEP_END, ("on_step_end",), "StepEndHook", False, True,
              "after every micro-batch, with the batch's context (the queue's enqueue)"),
    PhaseSpec(Phase.CHECKPOINT, ("after_batch",), "CutsCheckpoints", False, True,
              "the batch is done, every part's state final: where checkpoints are cut"),
)

SPECS: dict[Phase, PhaseSpec] = {s.phase: s for s in PHASES}
