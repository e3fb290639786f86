"""Optional hooks of the parts, as structural Protocols: a part implements one by defining the
method; the training module and ``hnm train`` check with ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hnm.types.context import ScoreContext
    from hnm.types.roles import Miner


@runtime_checkable
class ProvidesMiner(Protocol):
    """A batch sampler that also chooses explicit negatives (TAS-Balanced): ``hnm train`` uses
    ``as_miner()`` when no ``+miner`` is configured (None: this configuration has none)."""

    def as_miner(self) -> Miner | None: ...


@runtime_checkable
class ConfiguresModule(Protocol):
    """A miner that needs the LightningModule before training (ADORE's frozen document
    encoder, ANCE's access to the current weights)."""

    def configure_module(self, module: object) -> None: ...


@runtime_checkable
class StepEndHook(Protocol):
    """Called after every training batch (each micro-batch under gradient accumulation), e.g.
    to enqueue this batch's keys."""

    def on_step_end(self, module: object) -> None: ...


@runtime_checkable
class OptimizerStepHook(Protocol):
    """Called once after every optimizer step (not per micro-batch), e.g. a momentum update."""

    def on_optimizer_step(self, module: object) -> None: ...


@runtime_checkable
class AfterLoss(Protocol):
    """A negative strategy that needs the loss's unweighted per-query values of the batch it
    shaped (DBPM's loss history). ``per_query`` is None when the loss does not report them."""

    def after_loss(self, ctx: ScoreContext, per_query: object | None) -> None: ...


@runtime_checkable
class ReportsPerQuery(Protocol):
    """A loss that returns ``(scalar loss, unweighted per-query losses (B,), detached)``."""

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[object, object]: ...


@runtime_checkable
class EncodingLoss(Protocol):
    """A loss that encodes the batch itself (GradCache's chunked re-encoding)."""

    def encode(self, model: object, texts: Sequence[str]) -> object: ...


@runtime_checkable
class HasTemperature(Protocol):
    """A loss with a softmax temperature, so strategies can reason in logit space."""

    temperature: float


@runtime_checkable
class HasFrozenModels(Protocol):
    """A part holding models that must stay in eval mode during training (guides, teachers,
    momentum encoders, snapshots); the module puts them in eval before every step."""

    def frozen_models(self) -> list[object]: ...


@runtime_checkable
class ReportsEffect(Protocol):
    """A strategy that says what it changed so far in this run (cumulative counts, e.g.
    ``batches_recomposed``, ``negatives_attached``, ``candidates_masked``, ``pairs_reweighted``).

    ``hnm train`` writes them as ``strategy/<name>/<figure>`` to ``metrics.json`` and warns at
    the end of a run when every figure of a configured strategy is zero."""

    def effect(self) -> dict[str, float]: ...


@runtime_checkable
class ChecksSchedule(Protocol):
    """A strategy that can tell before training that it would never act, e.g. a warm-up as long
    as the run: raises :class:`~hnm.errors.ConfigError` naming the knob. ``epochs`` is the
    number of epochs the run will start (partial ones included), ``steps`` its optimizer
    steps."""

    def check_schedule(self, epochs: int, steps: int) -> None: ...


@runtime_checkable
class Stateful(Protocol):
    """A part whose state shapes the rest of the run (clusters, this epoch's batch list and
    position, mined pools, refresh schedules, queues, loss histories, momentum encoders, its own
    RNG). ``hnm train`` stores ``state_dict()`` in every checkpoint and calls
    ``load_state_dict`` on resume, so a resumed run continues exactly as an uninterrupted one.

    The state holds only plain Python values, numpy arrays and torch tensors (checkpoints are
    loaded with ``weights_only=True``)."""

    def state_dict(self) -> dict[str, object]: ...

    def load_state_dict(self, state: dict[str, object]) -> None: ...


@runtime_checkable
class ShapesContext(Protocol):
    """A miner that reshapes the batch's context after encoding, before the negative strategies
    (CET's per-negative weights from the current scores and the pooling ranks)."""

    def shape_context(self, ctx: ScoreContext) -> ScoreContext: ...


@runtime_checkable
class JointObjective(Protocol):
    """A part that trains a model of its own beside the retriever (AR2's ranker): it receives
    the retriever's loss of the step (after every strategy ran) and returns what the optimizer
    minimises, with its own terms added (or the retriever's left out in a phase that trains
    only its model)."""

    def joint_loss(self, ctx: ScoreContext, loss: object) -> object: ...


@runtime_checkable
class HasParamGroups(Protocol):
    """A part whose trainable parameters (registered in the module) need their own optimizer
    settings: ``param_groups()`` returns AdamW groups (``params``, ``lr``, optional
    ``weight_decay``); the module leaves those parameters out of its default groups."""

    def param_groups(self) -> list[dict[str, object]]: ...


@runtime_checkable
class SavesModels(Protocol):
    """A part holding a trained model worth keeping beside the retriever (AR2's ranker):
    ``hnm train`` calls ``save_models(run_folder)`` after the final evaluation."""

    def save_models(self, folder: object) -> list[str]: ...
