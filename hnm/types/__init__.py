"""The contracts between hnm's parts, in one place: the roles (:mod:`hnm.types.roles`), their
optional hooks (:mod:`hnm.types.hooks`) and the score context every in-batch strategy and loss
reads and writes (:mod:`hnm.types.context`)."""

from hnm.types.context import ScoreContext
from hnm.types.hooks import (
    AfterLoss,
    ChecksSchedule,
    ConfiguresModule,
    EncodingLoss,
    HasFrozenModels,
    HasParamGroups,
    HasTemperature,
    JointObjective,
    OptimizerStepHook,
    ProvidesMiner,
    ReportsEffect,
    ReportsPerQuery,
    SavesModels,
    ShapesContext,
    Stateful,
    StepEndHook,
)
from hnm.types.roles import BatchSampler, EmbedFn, Loss, Miner, NegativeStrategy

__all__ = ["AfterLoss", "BatchSampler", "ChecksSchedule", "ConfiguresModule", "EmbedFn",
           "EncodingLoss", "HasFrozenModels", "HasParamGroups", "HasTemperature",
           "JointObjective", "Loss", "Miner", "NegativeStrategy", "OptimizerStepHook",
           "ProvidesMiner", "ReportsEffect", "ReportsPerQuery", "SavesModels", "ScoreContext",
           "ShapesContext", "Stateful", "StepEndHook"]
