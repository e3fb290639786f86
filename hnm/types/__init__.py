"""The contracts between hnm's parts, in one place.

- :mod:`hnm.types.roles`: the four roles (batch sampler, miner, in-batch strategy, loss);
- :mod:`hnm.types.phases`: the phases of training in order (:data:`PHASES`), which each part
  declares it takes part in;
- :mod:`hnm.types.hooks`: the methods of those phases;
- :mod:`hnm.types.capabilities`: what a part can do besides (report its effect, check the run
  length, keep its state, declare models, see training);
- :mod:`hnm.types.context`: the :class:`ScoreContext` every in-batch strategy and loss reads;
- :mod:`hnm.types.view`: the read-only :class:`TrainingView` parts get instead of the module.
"""

from hnm.types.capabilities import (
    ChecksSchedule,
    Closes,
    DeclaresModels,
    HasFrozenModels,
    HasParamGroups,
    HasTemperature,
    ProvidesMiner,
    ReportsEffect,
    SavesModels,
    Stateful,
    UsesTraining,
)
from hnm.types.context import ScoreContext
from hnm.types.hooks import (
    AfterLoss,
    CutsCheckpoints,
    DeclaresPhases,
    EncodingLoss,
    JointObjective,
    OptimizerStepHook,
    RefreshesBeforeStep,
    ReportsPerQuery,
    ShapesContext,
    StepEndHook,
)
from hnm.types.phases import PHASES, Phase, PhaseSpec
from hnm.types.roles import BatchSampler, EmbedFn, Loss, Miner, NegativeStrategy
from hnm.types.view import TrainingView

__all__ = ["PHASES", "AfterLoss", "BatchSampler", "ChecksSchedule", "Closes",
           "CutsCheckpoints", "DeclaresModels", "DeclaresPhases", "EmbedFn", "EncodingLoss",
           "HasFrozenModels", "HasParamGroups", "HasTemperature", "JointObjective", "Loss",
           "Miner", "NegativeStrategy", "OptimizerStepHook", "Phase", "PhaseSpec",
           "ProvidesMiner", "RefreshesBeforeStep", "ReportsEffect", "ReportsPerQuery",
           "SavesModels", "ScoreContext", "ShapesContext", "Stateful", "StepEndHook",
           "TrainingView", "UsesTraining"]
