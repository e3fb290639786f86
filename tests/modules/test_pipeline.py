"""The step pipeline: every part declares its phases, the declarations are checked against its
methods, and the module calls the phases in the order of ``hnm.types.PHASES``."""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path

import lightning as L
import pytest
from omegaconf import OmegaConf

from hnm.cli import config_dir
from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import TrainPairs
from hnm.encoders.embed import encode_with_grad
from hnm.losses.infonce import InfoNCELoss
from hnm.modules.pipeline import ROLE_PHASES, StepPipeline, declared_phases
from hnm.modules.retrieval import RetrievalModule
from hnm.types import PHASES, Phase
from tests.conftest import make_data

CONF = Path(config_dir())
ROLE_OF_GROUP = {"sampler": "sampler", "miner": "miner", "negatives": "negatives",
                 "loss": "loss"}


def shipped_parts():
    for group, role in ROLE_OF_GROUP.items():
        for path in sorted((CONF / group).glob("*.yaml")):
            target = str(OmegaConf.load(path)["_target_"])
            mod, _, name = target.rpartition(".")
            yield f"{group}/{path.stem}", role, getattr(importlib.import_module(mod), name)


@pytest.mark.parametrize(("option", "role", "cls"), list(shipped_parts()),
                         ids=[o for o, _, _ in shipped_parts()])
def test_every_shipped_part_declares_the_phases_its_methods_serve(option, role, cls) -> None:
    phases = declared_phases(cls)  # refuses a declared phase without its method, and the reverse
    assert set(ROLE_PHASES[role]) <= set(phases), option


class Part:
    """A callable part that declares ``phases`` and defines whatever a test gives it."""

    def __init__(self, phases, **methods) -> None:
        self.phases = tuple(phases)
        for name, fn in methods.items():
            setattr(self, name, fn)

    def __call__(self, ctx):
        return ctx


def test_a_part_must_declare_its_phases() -> None:
    with pytest.raises(TypeError, match="declares no phases"):
        declared_phases(object())


def test_a_declared_phase_needs_its_method() -> None:
    with pytest.raises(TypeError, match="declares Phase.STEP_END but has no on_step_end"):
        declared_phases(Part([Phase.STEP_END]))
    with pytest.raises(TypeError, match="the module's own phase"):
        declared_phases(Part([Phase.GATHER]))


def test_a_hook_without_its_phase_would_never_run_and_is_refused() -> None:
    with pytest.raises(TypeError, match="does not declare Phase.AFTER_LOSS"):
        declared_phases(Part([Phase.IN_BATCH], after_loss=lambda ctx, per_query: None))


def test_a_role_needs_its_phase_and_single_phases_take_one_part() -> None:
    loss = InfoNCELoss()
    with pytest.raises(TypeError, match="is the run's negatives but does not declare"):
        StepPipeline(loss, negatives=[Part([Phase.AFTER_LOSS], after_loss=print)])
    encoding = Part([Phase.IN_BATCH, Phase.ENCODE], encode=print)
    with pytest.raises(TypeError, match="takes one part"):
        StepPipeline(Part([Phase.LOSS, Phase.ENCODE], encode=print), negatives=[encoding])
    steps = StepPipeline(loss, negatives=[encoding])
    assert steps.at(Phase.IN_BATCH) == [encoding] and steps.one(Phase.LOSS) is loss


class Recorder:
    """A sampler, miner, in-batch strategy, loss and checkpoint cut that take part in every
    phase they can and record the order of the calls."""

    def __init__(self) -> None:
        self.calls: list[Phase] = []

    def parts(self):
        seen = self.calls.append
        infonce = InfoNCELoss()

        class Sampler:
            phases = (Phase.EPOCH_START, Phase.COMPOSE_BATCH)

            def set_epoch(self, epoch):
                seen(Phase.EPOCH_START)

            def needs_refresh(self, epoch):
                return False

            def refresh(self, eq, ed):
                return {}

            def __iter__(self):
                return iter([])

            def __len__(self):
                return 0

        class Miner:
            num_negatives = 1
            phases = (Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES, Phase.SHAPE_CONTEXT,
                      Phase.OBJECTIVE)

            def needs_refresh(self, step):
                seen(Phase.BEFORE_STEP)
                return False

            def refresh(self, eq, ed):
                return {}

            def negatives(self, pair_idx, epoch, step):
                seen(Phase.ATTACH_NEGATIVES)
                return [["d0_0"] for _ in pair_idx], None

            def shape_context(self, ctx):
                seen(Phase.SHAPE_CONTEXT)
                return ctx

            def joint_loss(self, ctx, loss):
                seen(Phase.OBJECTIVE)
                return loss

        class Strategy:
            phases = (Phase.IN_BATCH, Phase.AFTER_LOSS, Phase.OPTIMIZER_STEP, Phase.STEP_END)

            def __call__(self, ctx):
                seen(Phase.IN_BATCH)
                return ctx

            def after_loss(self, ctx, per_query):
                seen(Phase.AFTER_LOSS)

            def on_optimizer_step(self, view):
                seen(Phase.OPTIMIZER_STEP)

            def on_step_end(self, view, ctx):
                seen(Phase.STEP_END)

        class Loss:
            phases = (Phase.ENCODE, Phase.LOSS)
            temperature = 0.05

            def encode(self, model, texts):
                seen(Phase.ENCODE)
                return encode_with_grad(model, texts)

            def __call__(self, ctx):
                seen(Phase.LOSS)
                return infonce(ctx)

        class Cut:
            phases = (Phase.CHECKPOINT,)

            def after_batch(self, trainer):
                seen(Phase.CHECKPOINT)

        return Sampler(), Miner(), Strategy(), Loss(), Cut()


def test_the_module_runs_the_phases_in_the_order_of_the_table(tiny_model) -> None:
    rec = Recorder()
    sampler, miner, strategy, loss, cut = rec.parts()
    pairs = TrainPairs.from_split(make_data(), "train")
    module = RetrievalModule(copy.deepcopy(tiny_model), loss, pairs, miner=miner,
                             negatives=[strategy], sampler=sampler, hooks=[cut], lr=1e-3,
                             telemetry_every=0)
    module.observers.append(lambda ctx, loss, per_query: rec.calls.append(Phase.OBSERVE))
    trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", use_distributed_sampler=False)
    trainer.fit(module, datamodule=RetrievalDataModule(pairs, batch_size=4, seed=0))
    calls = [p for i, p in enumerate(rec.calls) if i == 0 or p != rec.calls[i - 1]]
    step = [Phase.BEFORE_STEP, Phase.ATTACH_NEGATIVES, Phase.ENCODE, Phase.SHAPE_CONTEXT,
            Phase.IN_BATCH, Phase.LOSS, Phase.AFTER_LOSS, Phase.OBJECTIVE, Phase.OBSERVE,
            Phase.OPTIMIZER_STEP, Phase.STEP_END, Phase.CHECKPOINT]
    assert calls == [Phase.EPOCH_START, *step, *step]
    order = [spec.phase for spec in PHASES]
    assert [Phase.EPOCH_START, *step] == sorted([Phase.EPOCH_START, *step], key=order.index)


def test_the_architecture_notes_show_the_phases_in_order() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| ([^|]+) \|", text, flags=re.M)
    assert [(int(n), name) for n, name, _ in rows] == [
        (i + 1, spec.phase.name) for i, spec in enumerate(PHASES)]
    for (_, _, protocol), spec in zip(rows, PHASES):
        assert spec.protocol in protocol
