"""``hnm eval model=RUN`` reads values from a run folder, never code: every ``_target_`` in
the sections it uses (``data``, ``eval``, ``poison``) must resolve to a class of hnm that hnm's
configs name; anything else is refused before any of it runs (a planted marker never appears)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hnm.cli import config_dir, main
from hnm.errors import ConfigError, DataError
from hnm.eval.targets import parse_model

# a pickle that creates a file when loaded (protocol 0: os.system('touch …'))
PICKLE = "cos\nsystem\n(S'touch {marker}'\ntR."


def _run_folder(root: Path, target: str) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "modules.json").write_text("[]")
    (root / "config.yaml").write_text(
        "data:\n  name: x\n  source:\n    _target_: " + target + "\n    command: touch /tmp/x\n"
        "eval:\n  evaluator:\n    _target_: hnm.eval.evaluator.RetrievalEvaluator\n")
    return root


def _planted(root: Path, section: str, node: dict) -> tuple[Path, Path]:
    """A run folder whose config's ``section`` is ``node`` ({marker} and {pickle} filled in)."""
    folder = _run_folder(root, "hnm.data.beir.load_beir")
    marker, pickle = root / "MARKER", root / "evil.pkl"
    pickle.write_text(PICKLE.format(marker=marker))
    text = json.dumps(node).replace("{marker}", str(marker)).replace("{pickle}", str(pickle))
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    keys = section.split(".")
    parent = cfg
    for k in keys[:-1]:
        parent = parent.setdefault(k, {})
    parent[keys[-1]] = json.loads(text)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder, marker


def test_a_foreign_target_is_refused(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "os.system")
    with pytest.raises(ConfigError) as err:
        parse_model(str(folder))
    assert "data.source._target_='os.system' names code outside hnm" in str(err.value)
    assert str(folder / "config.yaml") in str(err.value)


def test_hnm_targets_are_accepted(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "hnm.data.beir.load_beir")
    assert parse_model(str(folder)).kind == "run"


@pytest.mark.parametrize(("section", "node", "needle"), [
    # the poison section is instantiated too
    ("poison", {"_target_": "torch.load", "f": "{pickle}", "weights_only": False},
     "poison._target_='torch.load' names code outside hnm"),
    # a prefix test would pass this one: it resolves to torch.load
    ("poison", {"_target_": "hnm.encoders.factory.torch.load", "f": "{pickle}",
                "weights_only": False}, "resolves to torch.serialization.load"),
    ("data.source", {"_target_": "hnm.encoders.factory.torch.load", "f": "{pickle}"},
     "data.source._target_="),
    # defined in hnm, but no config of hnm's names it: it writes a file
    ("poison", {"_target_": "hnm.runinfo.write_text", "path": "{marker}", "text": "x"},
     "is not one of the classes hnm's configs name"),
    ("poison", {"_target_": "hnm.runinfo._private"}, "is not a public name of hnm"),
    ("eval.evaluator.extra", {"_target_": "os.system", "_recursive_": False,
                              "command": "touch {marker}"}, "eval.evaluator.extra._target_"),
    ("poison", {"_target_": "${oc.env:NOT_SET,os.system}"}, "is an interpolation"),
    ("poison.trigger", "${oc.create:{_target_: os.system, command: 'touch {marker}'}}",
     "calls the resolver 'oc.create'"),
    ("data.source.trust_remote_code", True, "would run the Python code a model ships"),
    ("poison", {"_target_": ["hnm.poison.Poisoning"]}, "must be a plain value"),
])
def test_planted_code_is_refused(tmp_path: Path, section: str, node, needle: str) -> None:
    folder, marker = _planted(tmp_path / "run", section, node)
    with pytest.raises(ConfigError) as err:
        parse_model(str(folder))
    assert needle in str(err.value) and str(folder / "config.yaml") in str(err.value)
    assert not marker.exists()


def test_the_config_of_a_real_run_is_accepted(tmp_path: Path) -> None:
    """What ``hnm train`` writes (every shipped data/eval/poison option) passes the check."""
    for overrides in (["+poison=grammar"], ["data=beir", "data.path=/x"], ["data=hf",
                      "data.name=x"], ["+poison=grammar_offtopic"]):
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose("train", overrides=["experiment=smoke", *overrides])
        folder = tmp_path / "_".join(overrides).replace("/", "_")
        (folder / "model").mkdir(parents=True)
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))  # unresolved, as .hydra/
        assert parse_model(str(folder)).kind == "run"


def test_a_finished_run_without_its_model_is_not_called_unfinished(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "hnm.data.beir.load_beir")
    (folder / "model" / "modules.json").unlink()
    (folder / "model").rmdir()
    (folder / "status.json").write_text(json.dumps({"state": "finished"}))
    with pytest.raises(DataError) as err:
        parse_model(str(folder))
    assert "did not finish" not in str(err.value) and "has not finished" not in str(err.value)
    assert "the run finished" in str(err.value) and "model/ folder is missing" in str(err.value)
    (folder / "status.json").write_text(json.dumps({"state": "failed", "error": "boom"}))
    with pytest.raises(DataError, match="the run failed before saving its model.*boom"):
        parse_model(str(folder))


def test_an_unreadable_config_names_the_file(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "hnm.data.beir.load_beir")
    (folder / "config.yaml").write_text("data: [1, 2\n")
    with pytest.raises(DataError, match="config.yaml: not a readable YAML config"):
        parse_model(str(folder))


def test_hnm_eval_refuses_before_making_its_folder(tmp_path: Path, capsys) -> None:
    """Through the command: exit 2, one paragraph, no output folder, no marker."""
    folder, marker = _planted(tmp_path / "run", "poison",
                              {"_target_": "torch.load", "f": "{pickle}", "weights_only": False})
    out = tmp_path / "eval"
    with pytest.raises(SystemExit) as stop:
        main(["eval", f"model={folder}", f"hydra.run.dir={out}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.startswith("hnm: error: ") and "poison._target_='torch.load'" in err
    assert not out.exists() and not marker.exists()
