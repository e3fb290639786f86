"""The ranges of the parts are the constructors' own, read from their source
(:mod:`hnm.static_signature`): no shipped option is refused, and the reading agrees with the
imported code."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hnm import knobs
from hnm.cli import config_dir
from hnm.config_check import signature
from hnm.errors import ConfigError
from hnm.static_signature import knobs_of


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))


@pytest.mark.parametrize("overrides", [
    [], ["trainer=gpu"], ["encoder=hf", "encoder.name=x"], ["encoder=minilm"],
    *[[f"+sampler={o}"] for o in _options("sampler")],
    *[[f"+miner={o}"] for o in _options("miner")],
    *[[f"+negatives={o}"] for o in _options("negatives")],
    *[[f"loss={o}"] for o in _options("loss")],
    *[[f"+poison={o}"] for o in _options("poison")],
    ["data=beir", "data.path=/x"], ["data=hf", "data.name=x"],
])
def test_every_shipped_option_passes(overrides: list[str]) -> None:
    """No false refusal: the defaults of every option of every group are valid."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        knobs.check(compose("train", overrides=["experiment=smoke", *overrides]))
        if not any(o.startswith("loss=") for o in overrides):  # hnm mine has no loss
            mine = [o[1:] if o.startswith("+miner=") else o for o in overrides]
            knobs.check(compose("mine", overrides=["experiment=smoke", *mine]))


def test_eval_defaults_pass() -> None:
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        knobs.check(compose("eval_cmd"))
        with pytest.raises(ConfigError, match=r"bm25\.b=2 is not valid"):
            knobs.check(compose("eval_cmd", overrides=["bm25.b=2"]))


def _targets() -> list[str]:
    from hnm.received import shipped_targets

    return sorted(shipped_targets())


@pytest.mark.parametrize("target", _targets())
def test_the_source_reading_agrees_with_the_imported_signature(target: str) -> None:
    """:func:`knobs_of` finds the parameters :func:`hnm.config_check.signature` finds."""
    from hydra.utils import get_object

    obj = get_object(target)
    params, _, open_kwargs = signature(obj)
    found = knobs_of(target)
    assert found is not None
    assert set(found.params) == set(params) and found.open == open_kwargs
    assert set(found.ranges) | set(found.choices) <= set(params)

