"""Run state as plain values: capture -> torch.save -> torch.load(weights_only=True) -> restore
gives back parts that behave as before; resume files that are wrong are refused clearly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from hnm import checkpoint as ckpt_io
from hnm.errors import ConfigError
from hnm.miners.ance import _Done
from hnm.miners.base import Mined
from hnm.miners.filters import Pool
from hnm.state import capture, held_elsewhere, restore, rng_state, set_rng_state


class Part:
    """A part with every kind of state hnm's strategies keep."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(3)
        self.py = random.Random(4)
        self.gen = torch.Generator().manual_seed(5)
        self.labels = np.arange(10, dtype=np.int64) % 3
        self.ids = np.array(["a", "b"], dtype=object)
        self.queue = torch.randn(4, 8)
        self.history = {"q1": [0.5, 0.25], (1, 2): 3}
        self.seen = {1, 2, 3}
        self.counts = {"served": 7}
        self.key_encoder = torch.nn.Linear(3, 2)
        self.fn = lambda x: x  # not state: rebuilt from the configuration
        self.pool = _Done(None)


def _roundtrip(state: dict, tmp: Path) -> dict:
    torch.save(state, tmp / "s.pt")
    return torch.load(tmp / "s.pt", weights_only=True)


def test_every_kind_of_state_survives_a_weights_only_checkpoint(tmp_path: Path) -> None:
    a = Part()
    a.rng.random(5), a.py.random(), torch.rand(2, generator=a.gen)  # advance them
    state = _roundtrip(capture(a), tmp_path)
    assert state["__skipped__"] == ["fn"]
    b = Part()
    restore(b, state)
    assert a.rng.random() == b.rng.random() and a.py.random() == b.py.random()
    assert torch.equal(torch.rand(3, generator=a.gen), torch.rand(3, generator=b.gen))
    np.testing.assert_array_equal(a.labels, b.labels)
    assert b.labels.dtype == np.int64 and list(b.ids) == ["a", "b"]
    assert torch.equal(a.queue, b.queue) and b.queue is not a.queue
    assert b.history == a.history and b.seen == a.seen and b.counts == a.counts
    for pa, pb in zip(a.key_encoder.parameters(), b.key_encoder.parameters()):
        assert torch.equal(pa, pb)
    assert isinstance(b.pool, _Done) and b.pool.finish() is None


def test_hnm_objects_are_rebuilt_only_from_hnm_classes(tmp_path: Path) -> None:
    a = Part()
    pool = Pool(idx=np.array([[1, 2]]), scores=np.array([[0.5, 0.25]], dtype=np.float32),
                count=np.array([2]))
    a.pool = _Done(Mined(pool=pool, pos_scores=np.array([0.9]), removed={"margin": 1},
                         stats={"n": 1.0}))
    b = Part()
    b.pool = None
    restore(b, _roundtrip(capture(a), tmp_path))
    assert isinstance(b.pool, _Done)
    got = b.pool.finish()
    assert isinstance(got, Mined) and isinstance(got.pool, Pool) and got.removed == {"margin": 1}
    np.testing.assert_array_equal(got.pool.idx, [[1, 2]])
    assert got.pool.scores.dtype == np.float32
    forged = capture(a)
    forged["pool"]["__object__"] = "os:system"
    with pytest.raises(ValueError, match="not hnm's own"):
        restore(Part(), forged)


def test_what_the_checkpoint_holds_elsewhere_is_not_copied() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(2, 2))
    a = Part()
    a.key_encoder = module[0]  # the training module's own layer
    a.data = object()
    state = capture(a, held_elsewhere([module], a.data))
    assert "key_encoder" in state["__skipped__"] and "key_encoder" not in state


def test_global_generators_roundtrip(tmp_path: Path) -> None:
    saved = _roundtrip(rng_state(), tmp_path)
    want = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(saved)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2] == got[2]


# -- resume files that are wrong ---------------------------------------------------------------
def test_missing_resume_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such checkpoint file or run folder"):
        ckpt_io.resolve(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no checkpoints/last.ckpt"):
        ckpt_io.resolve(tmp_path)


def test_truncated_or_foreign_checkpoints(tmp_path: Path) -> None:
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {}, "hnm": {"config": {}}}, good)
    assert ckpt_io.load(good)["hnm"] == {"config": {}}
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError, match="truncated"):
        ckpt_io.load(cut)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        ckpt_io.load(text)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ConfigError, match="without hnm's run state"):
        ckpt_io.load(other)
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hnm": {}, "x": Path("x")}, evil)  # a class: not plain data
    with pytest.raises(ConfigError, match="cannot read the checkpoint"):
        ckpt_io.load(evil)


def test_incompatible_configuration_names_the_keys() -> None:
    saved = {"seed": 1, "loss": {"temperature": 0.05}, "logger": {"a": 1}, "resume": None}
    now = OmegaConf.create({"seed": 1, "loss": {"temperature": 0.1}, "logger": {"a": 2},
                            "resume": "x", "batch_size": 8})
    diffs = ckpt_io.config_differences(saved, now)
    assert diffs == ["batch_size: '(absent)' -> 8", "loss.temperature: 0.05 -> 0.1"]
    with pytest.raises(ConfigError, match="loss.temperature: 0.05 -> 0.1"):
        ckpt_io.check_compatible(Path("r.ckpt"), {"hnm": {"config": saved}}, now)
