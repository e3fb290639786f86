"""Inside ``training_step``: trainable encoders in train mode (eval with ``module.dropout=false``),
every frozen model in eval mode, for every option of every strategy group, with and without the
zero-shot evaluation before training (which used to switch dropout on as a side effect)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hnm.cli import config_dir
from tests.effects.harness import record_fit
from tests.effects.planted_files import negatives_file

CONF = Path(config_dir())
GROUPS = ("sampler", "miner", "negatives", "loss")
# what an option needs besides itself to train in a smoke run
NEEDS = {
    # the starting model as its own teacher is refused unless asked for
    ("loss", "margin_mse"): ["+miner=denoise", "loss.allow_self_teacher=true"],
    ("loss", "kl"): ["+miner=denoise", "loss.allow_self_teacher=true"],
    ("miner", "ance"): ["miner.refresh_every_n_steps=1"],
    ("miner", "ar2"): ["miner.refresh_every_n_steps=2",  # a ranker step, then a retriever step
                       "miner.ranker.model=fresh"],  # no ranker given refuses to start
    ("negatives", "gist"): ["negatives.gist.guide='${encoder}'"],  # likewise without a guide
    ("miner", "adore"): ["miner.doc_encoder='${encoder}'"],  # and without a document encoder
    ("sampler", "rs2"): ["sampler.partial_pass=true"],  # a smoke run is shorter than one pass
}


def options() -> list[tuple[str, str]]:
    return [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]


def _override(group: str, name: str, tmp: Path) -> list[str]:
    prefix = "" if group == "loss" else "+"
    out = [f"{prefix}{group}={name}", *NEEDS.get((group, name), [])]
    if (group, name) == ("miner", "from_file"):
        out.append(f"miner.path={negatives_file(tmp)}")
    return out


def _models(obj: object, depth: int = 0, seen: set[int] | None = None) -> list[torch.nn.Module]:
    """Every nn.Module reachable from a part's attributes (guides, teachers, key encoders)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 3:
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module) and any(True for _ in obj.parameters()) and depth:
        return [obj]
    out: list[torch.nn.Module] = []
    values = (list(obj) if isinstance(obj, (list, tuple)) else
              list(vars(obj).values()) if hasattr(obj, "__dict__") else [])
    if isinstance(obj, torch.nn.Module):
        values += list(obj._modules.values())
    for v in values:
        if isinstance(v, (torch.nn.Module, list, tuple)) or (
                hasattr(v, "__dict__") and type(v).__module__.startswith("hnm")):
            out += _models(v, depth + 1, seen)
    return out


def _probe(run) -> dict[str, bool]:
    """Modes of the trainable encoder(s) and of every other model the parts hold."""
    m = run.module
    trainable = [m.encoder] + ([m.doc_encoder] if m.doc_encoder is not None and any(
        p.requires_grad for p in m.doc_encoder.parameters()) else [])
    others = []
    for part in (m.loss_fn, m.miner, run.dm.batch_sampler, *m.strategies):
        # the training module itself (ANCE holds it to snapshot its encoders) is not a model
        others += [x for x in _models(part, seen={id(m)}) if all(x is not t for t in trainable)]
    # a part's model that the optimizer trains (AR2's ranker, CET's online selection model) may
    # train; one it does not, and whatever the module declares frozen this step, must not
    optimised = {id(p) for g in m.trainer.optimizers[0].param_groups for p in g["params"]}
    frozen = [x for x in others if not any(id(p) in optimised for p in x.parameters())]
    frozen += list(m.frozen_models())
    frozen_train = [type(x).__name__ for x in frozen if any(s.training for s in x.modules())]
    return {"trainable_all_train": all(s.training for t in trainable for s in t.modules()),
            "trainable_any_train": any(s.training for t in trainable for s in t.modules()),
            "frozen_in_train": bool(frozen_train), "n_others": len(others)}


@pytest.mark.slow
@pytest.mark.parametrize("group,name", options(), ids=[f"{g}={n}" for g, n in options()])
def test_modes_inside_training_step(tmp_path, group, name) -> None:
    """Modes right, with and without the zero-shot evaluation, and the same loss curve."""
    curves = []
    for zero_shot in (False, True):
        folder = tmp_path / f"zero_shot_{zero_shot}"
        folder.mkdir()
        overrides = [*_override(group, name, folder), "trainer.max_steps=3",
                     f"eval.zero_shot={str(zero_shot).lower()}"]
        rec = record_fit(folder, overrides, probe=_probe)
        assert rec.steps, "no training step ran"
        for s in rec.steps:
            assert s.probe["trainable_all_train"], (zero_shot, s.global_step, s.probe)
            assert not s.probe["frozen_in_train"], (zero_shot, s.global_step, s.probe)
        curves.append(rec.losses)
    assert curves[0] == pytest.approx(curves[1], abs=1e-5), "the zero-shot evaluation changed training"


def test_dropout_false_trains_in_eval_mode(tmp_path) -> None:
    rec = record_fit(tmp_path, ["module.dropout=false", "trainer.max_steps=2",
                                "eval.zero_shot=true"], probe=_probe)
    assert rec.steps
    assert not any(s.probe["trainable_any_train"] for s in rec.steps)


def test_zero_shot_evaluation_leaves_the_loss_curve_unchanged(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = record_fit(tmp_path / "a", ["trainer.max_steps=3", "eval.zero_shot=false"])
    b = record_fit(tmp_path / "b", ["trainer.max_steps=3", "eval.zero_shot=true"])
    assert a.losses == pytest.approx(b.losses, abs=1e-6)
    assert all(s.modes["encoder_all"] for s in a.steps + b.steps)  # dropout on by default
