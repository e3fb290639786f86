"""Every option of every config group composes, and each ``_target_`` accepts its arguments."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from hnm.cli import config_dir
from hnm.config_check import check_node

CONF = Path(config_dir())
OPTIONAL = {"sampler", "miner", "negatives", "poison"}  # hparams_search, like experiment, defaults to null
SKIP_GROUPS = {"hydra"}
# values a user must give on the command line (``???`` in the YAML)
REQUIRED = {"data/beir": ["data.path=/nonexistent"], "data/hf": ["data.name=some/dataset"],
            "encoder/hf": ["encoder.name=some/model"],
            "miner/from_file": ["miner.path=/nonexistent.jsonl"]}
# arguments passed at instantiate time by hnm's code, not by the YAML
INJECTED = {
    "trainer": {"logger", "callbacks", "default_root_dir", "plugins", "strategy"},
    "eval.evaluator": {"data", "split"},
    "sampler": {"pairs", "batch_size", "seed", "drop_last"},
    "logger": {"save_dir", "group", "name"},
}


def options():
    for group_dir in sorted(p for p in CONF.iterdir() if p.is_dir()):
        if group_dir.name in SKIP_GROUPS:
            continue
        for yaml in sorted(group_dir.glob("*.yaml")):
            yield group_dir.name, yaml.stem


def _locate(path: str):
    mod, _, name = path.rpartition(".")
    obj = importlib.import_module(mod)
    return getattr(obj, name)


def _targets(node, path=""):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for k in node:
            child = node._get_node(k)
            if isinstance(child, DictConfig):
                yield from _targets(child, f"{path}.{k}" if path else str(k))


def _injected(path: str) -> set[str]:
    out: set[str] = set()
    for prefix, names in INJECTED.items():
        if path == prefix or path.startswith(prefix + "."):
            out |= names
    return out


@pytest.mark.parametrize(("group", "option"), list(options()))
def test_option_composes_and_binds(group: str, option: str) -> None:
    prefix = "+" if group in OPTIONAL else ""
    overrides = [f"{prefix}{group}={option}", *REQUIRED.get(f"{group}/{option}", [])]
    if group == "experiment":
        overrides = [f"experiment={option}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    OmegaConf.resolve(cfg)
    for path, node in _targets(cfg):
        target = _locate(str(node["_target_"]))
        kwargs = {k: None for k in node if not str(k).startswith("_")}
        sig = inspect.signature(target)
        try:
            sig.bind_partial(**kwargs)
        except TypeError as err:
            raise AssertionError(f"{group}={option}: {path}._target_={node['_target_']}: "
                                 f"{err}") from err
        given = set(kwargs) | _injected(path)
        missing = [n for n, p in sig.parameters.items()
                   if p.default is inspect.Parameter.empty
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in given]
        assert not missing, f"{group}={option}: {path} lacks required arguments {missing}"
    # as a run does (hnm.train.build): `auto` precisions resolved before the type check
    from hnm.precision import choose

    choose(cfg)
    for key in cfg:  # the run-time check of keys and value types accepts every shipped option
        if key != "hydra":
            check_node(cfg._get_node(key), str(key))


def test_every_group_has_an_option() -> None:
    groups = {g for g, _ in options()}
    assert {"data", "encoder", "loss", "trainer", "logger", "eval", "experiment"} <= groups
