"""Config mistakes: one paragraph naming the full key, what was found and what was expected,
exit status 2, no traceback (in-process: the checks, and ``hnm.cli.main`` where Hydra fails
before any training code runs)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from hnm.cli import main
from hnm.config_check import check_node, instantiate
from hnm.errors import ConfigError
from tests.test_config import CONF


def cfg_with(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["experiment=smoke", "logger=none", *overrides])


@pytest.mark.parametrize(("overrides", "key", "expected"), [
    (["loss.temperature=abc"], "loss.temperature='abc'", "expected a number"),
    (["loss.symmetric=maybe"], "loss.symmetric='maybe'", "expected true or false"),
    (["+negatives=queue", "negatives.queue.size=1.5"], "negatives.queue.size=1.5",
     "expected an integer"),
    (["+negatives=[queue,prebatch]", "negatives.prebatch.k=many"], "negatives.prebatch.k=",
     "expected an integer"),
    (["+sampler=ngame", "sampler.cluster_size=[1,2]"], "sampler.cluster_size=", "expected"),
    (["+miner=ance", "miner.num_negatives=five"], "miner.num_negatives='five'",
     "expected an integer"),
    (["trainer.max_epochs=one"], "trainer.max_epochs='one'", "expected"),
])
def test_wrong_type_names_the_key(overrides, key, expected) -> None:
    cfg = cfg_with(*overrides)
    group = key.split(".")[0]
    with pytest.raises(ConfigError) as err:
        check_node(cfg._get_node(group), group)
    assert key in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize(("overrides", "group", "message"), [
    (["+loss.nosuch=1"], "loss", "loss.nosuch is not a setting of loss"),
    (["+trainer.nosuch=1"], "trainer", "trainer.nosuch is not a setting of trainer"),
    (["+miner=ance", "+miner.nosuch=1"], "miner", "miner.nosuch is not a setting of miner"),
    (["+negatives=[queue,prebatch]", "+negatives.queue.sise=8"], "negatives",
     "negatives.queue.sise is not a setting of negatives.queue"),
])
def test_unknown_key_lists_the_valid_ones(overrides, group, message) -> None:
    cfg = cfg_with(*overrides)
    with pytest.raises(ConfigError) as err:
        check_node(cfg._get_node(group), group)
    assert message in str(err.value) and "valid settings:" in str(err.value)


def test_module_knobs_are_checked() -> None:
    from hnm.config_check import check_kwargs
    from hnm.modules.retrieval import RetrievalModule

    cfg = cfg_with("+module.lrr=1")
    with pytest.raises(ConfigError, match="module.lrr is not a setting of module"):
        check_kwargs("module", dict(cfg.module), RetrievalModule)
    check_kwargs("module", dict(cfg_with().module), RetrievalModule)


@pytest.mark.parametrize(("overrides", "key", "message"), [
    (["loss.temperature=0"], "loss", "loss.temperature"),
    (["loss=nbpo", "loss.temperature=-1"], "loss", "loss.temperature=-1"),
    (["+negatives=queue", "negatives.queue.momentum=2"], "negatives",
     "negatives.queue.momentum=2"),
    (["+negatives=[queue,prebatch]", "negatives.prebatch.k=0"], "negatives.prebatch",
     "negatives.prebatch.k=0"),
])
def test_out_of_range_is_a_config_error_naming_the_key(overrides, key, message) -> None:
    cfg = cfg_with(*overrides)
    node = OmegaConf.select(cfg, key)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        instantiate(node, key)


@pytest.mark.parametrize(("argv", "needles"), [
    (["+sampler=nosuch"], ["sampler=nosuch", "valid choices: ngame, no_duplicates"]),
    (["loss=nosuch"], ["loss=nosuch", "infonce"]),
    (["trainer.nosuch=1"], ["trainer.nosuch", "valid keys of 'trainer'", "max_epochs"]),
    (["loss.nosuch=1"], ["loss.nosuch", "temperature"]),
    (["seed=["], ["'seed=['", "not valid"]),
])
def test_hydra_errors_exit_2_in_one_paragraph(argv, needles, capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train", "experiment=smoke", f"hydra.run.dir={tmp_path}", *argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "HYDRA_FULL_ERROR" not in err
    assert err.startswith("hnm: error: ") and len(err.strip().splitlines()) == 1
    for needle in needles:
        assert needle in err


def test_data_check_unknown_key_lists_the_valid_ones(capsys) -> None:
    from hnm.commands.data import main as data_main

    with pytest.raises(SystemExit) as stop:
        data_main(["check", "data.nosuch=1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "data.nosuch: there is no key 'nosuch' in 'data'" in err and "train_split" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("overrides", "key", "message"), [
    (["loss.symmetric_weight=-1"], "loss", "loss.symmetric_weight=-1 is not valid"),
    (["loss=kl", "loss.teacher_batch_size=0"], "loss", "loss.teacher_batch_size=0"),
    (["loss=margin_mse", "loss.teacher_batch_size=-1"], "loss", "loss.teacher_batch_size=-1"),
    (["+miner=dense_static", "miner.batch_size=0"], "miner", "miner.batch_size=0"),
    (["+miner=ance", "miner.batch_size=-1"], "miner", "miner.batch_size=-1"),
    (["+miner=bm25", "miner.query_chunk=0"], "miner", "miner.query_chunk=0"),
])
def test_more_knobs_out_of_range(overrides, key, message) -> None:
    cfg = cfg_with(*overrides)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        instantiate(OmegaConf.select(cfg, key), key)


def test_tas_balanced_guide_batch_size() -> None:
    from hnm.data.dataset import TrainPairs
    from tests.conftest import make_data

    cfg = cfg_with("+sampler=tas_balanced", "sampler.guide_batch_size=0")
    factory = instantiate(cfg.sampler, "sampler")
    pairs = TrainPairs.from_split(make_data(4), "train")
    with pytest.raises(ConfigError, match=r"sampler\.guide_batch_size=0"):
        factory(pairs=pairs, batch_size=4, seed=0, drop_last=False)
