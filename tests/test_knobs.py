"""Every knob is checked by type and range before anything heavy starts: exit 2, one paragraph
naming the key, no run folder made, nothing of torch/Lightning/transformers imported. The
ranges of the parts are the constructors' own, read from their source
(:mod:`hnm.static_signature`); these tests also check that reading against the imported code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hnm import knobs
from hnm.cli import config_dir, main
from hnm.config_check import signature
from hnm.errors import ConfigError
from hnm.static_signature import knobs_of

BAD = [
    (["batch_size=abc"], "batch_size='abc' is not valid; expected an integer"),
    (["batch_size=0"], "batch_size=0 is not valid; expected an integer >= 1"),
    (["seed=abc"], "seed='abc' is not valid; expected an integer"),
    (["seed=-1"], "seed=-1 is not valid"),
    (["seed=1.5"], "seed=1.5 is not valid; expected an integer"),
    (["module.lr=-1"], "module.lr=-1 is not valid; expected > 0"),
    (["module.lr=0"], "module.lr=0 is not valid; expected > 0"),
    (["module.lr=abc"], "module.lr='abc' is not valid; expected a number"),
    (["module.warmup_ratio=2"], "module.warmup_ratio=2 is not valid; expected in [0, 1]"),
    (["data.max_seq_length=-5"], "data.max_seq_length=-5 is not valid; expected an integer >= 1"),
    (["data.max_seq_length=0"], "data.max_seq_length=0 is not valid; expected an integer >= 1"),
    (["encoder.max_seq_length=-5"], "encoder.max_seq_length=-5 is not valid; expected >= 1"),
    (["data.max_train_pairs=0"], "data.max_train_pairs=0 is not valid"),
    (["data.drop_last=maybe"], "data.drop_last='maybe' is not valid; expected true or false"),
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 would train nothing"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 would train nothing"),
    (["trainer.max_steps=-1", "trainer.max_epochs=-1"], "would train without end"),
    (["trainer.max_epochs=-2"], "trainer.max_epochs=-2 is not valid; expected an integer >= -1"),
    (["+trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 is not valid"),
    (["trainer.precision=x"], "trainer.precision='x' is not valid; expected one of"),
    (["trainer.accelerator=x"], "trainer.accelerator='x' is not valid; expected one of"),
    (["eval.batch_size=0"], "eval.batch_size=0 is not valid; expected an integer >= 1"),
    (["eval.evaluator.k=0"], "eval.evaluator.k=0 is not valid; expected >= 1"),
    (["eval.evaluator.index=x"], "eval.evaluator.index='x' is not valid; expected one of"),
    (["checkpoint.keep=0"], "checkpoint.keep=0 is not valid; expected an integer >= 1"),
    (["loss.temperature=0"], "loss.temperature=0 is not valid; expected > 0"),
    (["loss=nbpo", "loss.flip_rate=1"], "loss.flip_rate=1 is not valid; expected in [0, 1)"),
    (["+loss.nosuch=1"], "loss.nosuch is not a setting of loss"),
    (["+negatives=gist", "negatives.gist.margin=-1"], "negatives.gist.margin=-1"),
    (["+negatives=[queue,prebatch]", "negatives.prebatch.k=abc"],
     "negatives.prebatch.k='abc' is not valid; expected an integer"),
    (["+negatives=mochi", "negatives.mochi.beta_max=2"], "negatives.mochi.beta_max=2"),
    (["+negatives=dbpm", "negatives.dbpm.min_pairs=1"], "negatives.dbpm.min_pairs=1"),
    (["+negatives=progressive", "negatives.progressive.switch_at=5"],
     "negatives.progressive.switch_at=5"),
    (["+sampler=ngame", "sampler.n_iter=0"], "sampler.n_iter=0 is not valid; expected >= 1"),
    (["+sampler=tas_balanced", "sampler.guide_batch_size=0"], "sampler.guide_batch_size=0"),
    (["+sampler=rs2", "sampler.fraction=5"], "sampler.fraction=5 is not valid"),
    (["+miner=bm25", "miner.num_negatives=0"], "miner.num_negatives=0 is not valid"),
    (["+miner=ance", "miner.refresh_every_n_steps=0"], "miner.refresh_every_n_steps=0"),
    (["+miner=star", "miner.random_ratio=2"], "miner.random_ratio=2 is not valid"),
    (["+miner=dense_static", "miner.sampling_strategy=x"], "miner.sampling_strategy='x'"),
    (["+poison=grammar", "poison.rate=2"], "poison.rate=2 is not valid; expected in [0, 1]"),
    (["+poison=grammar", "poison.trigger.errors=0"], "poison.trigger.errors=0 is not valid"),
    (["encoder=tiny", "encoder.num_heads=0"], "encoder.num_heads=0 is not valid"),
    (["encoder=hf", "encoder.name=x", "encoder.pooling=x"], "encoder.pooling='x'"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_knob_is_refused_before_any_run_folder(tmp_path: Path, capsys, argv,
                                                     needle: str) -> None:
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["train", "experiment=smoke", "logger=none", *argv, f"hydra.run.dir={out}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.startswith("hnm: error: ") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    assert not out.exists()


def test_the_check_imports_nothing_heavy(tmp_path: Path) -> None:
    """As a user runs it: refused in about the time a misspelt key takes."""
    code = ("import sys\nfrom hnm.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "finally:\n    print(sorted(m for m in ('torch', 'lightning', 'transformers', "
            "'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, "train", "experiment=smoke",
                          "+negatives=gist", "negatives.gist.margin=-1",
                          f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2 and "negatives.gist.margin=-1" in out.stderr, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert not (tmp_path / "run").exists()


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


def test_gist_guide_errors_name_the_guide() -> None:
    from omegaconf import OmegaConf

    from hnm.config_check import instantiate

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=smoke", "+negatives=gist",
                                          "negatives.gist.guide='${encoder}'"])
    node = OmegaConf.create({"_target_": "hnm.negatives.gist.GISTFilter", "guide": {
        "_target_": "hnm.encoders.factory.hf_encoder", "name": "/nonexistent"}})
    with pytest.raises(ConfigError) as err:
        instantiate(node, "negatives.gist")
    assert str(err.value).startswith("negatives.gist.guide.name='/nonexistent'")
    assert cfg.negatives.gist.guide._target_ == cfg.encoder._target_


def test_a_run_that_would_train_no_batch(tmp_path: Path, capsys) -> None:
    from tests.beir_fixture import write_beir

    folder = write_beir(tmp_path / "toy")
    with pytest.raises(SystemExit) as stop:
        main(["train", "experiment=smoke", "logger=none", "data=beir", f"data.path={folder}",
              "batch_size=64", "data.drop_last=true", "eval.zero_shot=false",
              f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert "no training batch" in err and "batch_size=64" in err
