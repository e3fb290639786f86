"""What a part can do besides its phases, as structural Protocols: report its effect, refuse a
run it could not act in, keep its state across a resume, own models, see training.

A part implements one by defining the method; ``hnm train`` and the training module check with
``isinstance``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import nn

    from hnm.types.roles import Miner
    from hnm.types.view import TrainingView


@runtime_checkable
class ProvidesMiner(Protocol):
    """A batch sampler that also chooses explicit negatives (TAS-Balanced): ``hnm train`` uses
    ``as_miner()`` when no ``+miner`` is configured (None: this configuration has none)."""

    def as_miner(self) -> Miner | None: ...


@runtime_checkable
class UsesTraining(Protocol):
    """A part that looks at training while it runs (the step and run length, the encoders to
    snapshot, embedders of the current weights): the module hands it its read-only
    :class:`~hnm.types.view.TrainingView` once, when it is built."""

    def bind(self, view: TrainingView) -> None: ...


@runtime_checkable
class DeclaresModels(Protocol):
    """A part with models of its own beside the retriever (AR2's ranker, CET's selection model,
    ADORE's frozen document encoder, the queue's key encoder, NBPO's flip model).

    ``models(encoder, doc_encoder)`` builds them (from the starting query encoder and the
    module's separate document encoder, None when it has none) and returns them by name; the
    training module registers each under that name (its weights are in every checkpoint and it
    moves with the module) and the part keeps using the objects it returned. A model named
    ``doc_encoder`` becomes the module's document encoder."""

    def models(self, encoder: nn.Module, doc_encoder: nn.Module | None
               ) -> dict[str, nn.Module]: ...


@runtime_checkable
class HasFrozenModels(Protocol):
    """A part holding models that must stay in eval mode during training (guides, teachers,
    momentum encoders, snapshots); the module puts them in eval before every step."""

    def frozen_models(self) -> list[object]: ...


@runtime_checkable
class HasParamGroups(Protocol):
    """A part whose trainable parameters (of a model it declared) need their own optimizer
    settings: ``param_groups()`` returns AdamW groups (``params``, ``lr``, optional
    ``weight_decay``); the module leaves those parameters out of its default groups."""

    def param_groups(self) -> list[dict[str, object]]: ...


@runtime_checkable
class HasTemperature(Protocol):
    """A loss with a softmax temperature, so strategies can reason in logit space."""

    temperature: float


@runtime_checkable
class Stateful(Protocol):
    """A part whose state shapes the rest of the run (clusters, this epoch's batch list and
    position, mined pools, refresh schedules, queues, loss histories, its own RNG).
    ``hnm train`` stores ``state_dict()`` of every part in every checkpoint and calls
    ``load_state_dict`` on resume, so a resumed run continues exactly as an uninterrupted one;
    the weights of the models a part declared are in Lightning's checkpoint, not here.
    hnm's parts inherit both from :class:`hnm.state.PartState`.

    The state holds only plain Python values, numpy arrays and torch tensors (checkpoints are
    loaded with ``weights_only=True``)."""

    def state_dict(self) -> dict[str, object]: ...

    def load_state_dict(self, state: dict[str, object]) -> None: ...


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
class Closes(Protocol):
    """A part with background work (ANCE's asynchronous refresh): ``close()`` stops it when
    training ends."""

    def close(self) -> None: ...


@runtime_checkable
class SavesModels(Protocol):
    """A part holding a trained model worth keeping beside the retriever (AR2's ranker):
    ``hnm train`` calls ``save_models(run_folder)`` after the final evaluation."""

    def save_models(self, folder: object) -> list[str]: ...
