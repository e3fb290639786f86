"""The hooks of the step's phases (:mod:`hnm.types.phases`), as structural Protocols.

A part takes part in a phase by declaring it (``phases = (Phase.…, …)``) and defining the
phase's method; the training module checks both when it is built and calls the method at its
place in the step. Hooks that run after the optimizer step receive a read-only
:class:`~hnm.types.view.TrainingView`, never the module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hnm.types.context import ScoreContext
    from hnm.types.phases import Phase
    from hnm.types.roles import EmbedFn
    from hnm.types.view import TrainingView


@runtime_checkable
class DeclaresPhases(Protocol):
    """A part of the step: the phases it takes part in, in any order."""

    phases: tuple[Phase, ...]


@runtime_checkable
class RefreshesBeforeStep(Protocol):
    """``Phase.BEFORE_STEP``: asked with the optimizer step before its first micro-batch;
    ``refresh`` re-computes the part's state with embedders of the current weights (ANCE)."""

    def needs_refresh(self, step: int) -> bool: ...

    def refresh(self, embed_queries: EmbedFn, embed_docs: EmbedFn) -> dict[str, float]: ...


@runtime_checkable
class EncodingLoss(Protocol):
    """``Phase.ENCODE``: a loss that encodes the batch itself (GradCache's chunked
    re-encoding), instead of the module's forward pass."""

    def encode(self, model: object, texts: Sequence[str]) -> object: ...


@runtime_checkable
class ShapesContext(Protocol):
    """``Phase.SHAPE_CONTEXT``: a miner that reshapes the batch's context after encoding, before
    the in-batch strategies (CET's per-negative weights from the current scores and the
    pooling ranks)."""

    def shape_context(self, ctx: ScoreContext) -> ScoreContext: ...


@runtime_checkable
class ReportsPerQuery(Protocol):
    """``Phase.LOSS``: a loss that returns ``(scalar loss, unweighted per-query losses (B,),
    detached)``, which ``Phase.AFTER_LOSS`` hands on."""

    def loss_and_per_query(self, ctx: ScoreContext) -> tuple[object, object]: ...


@runtime_checkable
class AfterLoss(Protocol):
    """``Phase.AFTER_LOSS``: a part that needs the loss's unweighted per-query values of the
    batch it shaped (DBPM's loss history). ``per_query`` is None when the loss does not report
    them."""

    def after_loss(self, ctx: ScoreContext, per_query: object | None) -> None: ...


@runtime_checkable
class JointObjective(Protocol):
    """``Phase.OBJECTIVE``: a part that trains a model of its own beside the retriever (AR2's
    ranker, CET's selection model): it receives the loss of the step (after every strategy
    ran) and returns what the optimizer minimises, with its own terms added (or the
    retriever's left out in a phase that trains only its model)."""

    def joint_loss(self, ctx: ScoreContext, loss: object) -> object: ...


@runtime_checkable
class OptimizerStepHook(Protocol):
    """``Phase.OPTIMIZER_STEP``: called once after every optimizer step (not per
    micro-batch), e.g. a momentum update."""

    def on_optimizer_step(self, view: TrainingView) -> None: ...


@runtime_checkable
class StepEndHook(Protocol):
    """``Phase.STEP_END``: called after every training batch (each micro-batch under gradient
    accumulation) with the batch's context as it reached the loss, e.g. to enqueue this
    batch's keys."""

    def on_step_end(self, view: TrainingView, ctx: ScoreContext) -> None: ...


@runtime_checkable
class CutsCheckpoints(Protocol):
    """``Phase.CHECKPOINT``: the batch is done and every part's state is final (after the
    step-end hooks): where a checkpoint holds the state the next batch starts from."""

    def after_batch(self, trainer: object) -> None: ...
