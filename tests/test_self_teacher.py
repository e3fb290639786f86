"""A distillation loss (loss=kl, loss=margin_mse) without its hard-label term, taught by the
starting model itself, refuses to start: the student starts where its teacher is, so the loss
has nothing to teach (measured on stdlib_code dev: loss=kl +miner=denoise ended at the
zero-shot model's nDCG@10, 0.039 below the baseline)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from hnm.cli import config_dir
from hnm.errors import ConfigError
from hnm.knobs import check


def cfg(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("loss", ["kl", "margin_mse"])
@pytest.mark.parametrize("source", [["+miner=denoise"], ["+sampler=tas_balanced"]])
def test_self_distillation_refuses_with_the_knobs_that_fix_it(loss, source) -> None:
    with pytest.raises(ConfigError) as err:
        check(cfg(f"loss={loss}", *source))
    text = str(err.value)
    assert f"loss={loss}" in text and "starting model" in text
    for knob in ("loss.infonce_weight=1.0", "loss.allow_self_teacher=true", "cross_encoder"):
        assert knob in text, knob
    assert "\n" not in text


@pytest.mark.parametrize("fix", [
    ["loss.infonce_weight=1.0"],                                   # hard labels kept
    ["loss.allow_self_teacher=true"],                              # deliberately
    ["loss.teacher=some/cross-encoder"],                           # a teacher model
    ["miner.cross_encoder=some/cross-encoder"],                    # a stronger guide
    ["miner.guide={_target_: hnm.encoders.factory.hf_encoder, name: some/model}"],
])
@pytest.mark.parametrize("loss", ["kl", "margin_mse"])
def test_a_teacher_or_the_hard_labels_let_it_start(loss, fix) -> None:
    check(cfg(f"loss={loss}", "+miner=denoise", *fix))


def test_tas_with_its_own_guide_starts() -> None:
    check(cfg("loss=margin_mse", "+sampler=tas_balanced",
              "sampler.guide={_target_: hnm.encoders.factory.hf_encoder, name: some/model}"))


def test_other_losses_are_not_concerned() -> None:
    check(cfg("+miner=denoise"))
    check(cfg("loss=triplet", "+sampler=tas_balanced"))
