"""``hnm train resume=RUN`` reads values from the run folder, never code: its
``.hydra/overrides.yaml`` may hold no Hydra key, no flag and no ``_target_`` outside hnm's own
classes, and a checkpoint may only rebuild hnm's own classes. Refused with exit 2 before Hydra
starts, the folder unchanged and a planted marker never created."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hnm.cli import expand_resume, main
from hnm.errors import ConfigError
from hnm.received import check_overrides

PICKLE = "cos\nsystem\n(S'touch {marker}'\ntR."


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def interrupted_run(folder: Path, overrides: list) -> Path:
    """A run folder as an interrupted ``hnm train`` leaves it (the checkpoint is a stub)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"not read: refused before")
    (folder / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    (folder / "status.json").write_text(json.dumps({"state": "interrupted"}))
    return folder


@pytest.mark.parametrize(("entry", "needle"), [
    ("+hydra.callbacks.evil._target_=hnm.runinfo.write_text", "configures Hydra itself"),
    ("hydra/launcher=joblib", "configures Hydra itself"),
    ("~hydra.callbacks.preflight", "configures Hydra itself"),
    ("+experiment@hydra=smoke", "configures Hydra itself"),
    ("--experimental-rerun={pickle}", "is a command-line flag"),
    ("-m", "is a command-line flag"),
    ("trainer._target_=hnm.train.L.Trainer", "resolves to lightning.pytorch.trainer"),
    ("+loss.x={{_target_: torch.load, f: '{pickle}', weights_only: false}}",
     "loss.x._target_='torch.load' names code outside hnm"),
    ("+loss.x='${{oc.create:{{_target_: torch.load, f: {pickle}}}}}'",
     "calls the resolver 'oc.create'"),
    ("loss._target_=${{oc.env:X,torch.load}}", "is an interpolation"),
    ("encoder.trust_remote_code=true", "would run the Python code a model ships"),
    ("seed=[", "is not an override Hydra can read"),
])
def test_a_planted_override_is_refused(tmp_path: Path, entry: str, needle: str,
                                       capsys) -> None:
    marker, pickle = tmp_path / "MARKER", tmp_path / "evil.pkl"
    pickle.write_text(PICKLE.format(marker=marker))
    folder = interrupted_run(tmp_path / "run", ["experiment=smoke", "logger=none",
                                                entry.format(pickle=pickle)])
    before = checksums(folder)
    with pytest.raises(SystemExit) as stop:
        main(["train", f"resume={folder}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err, err
    assert err.startswith("hnm: error: ") and needle in err, err
    assert str(folder / ".hydra" / "overrides.yaml") in err and "entry 3" in err
    assert not marker.exists() and checksums(folder) == before


def test_hnm_own_overrides_pass(tmp_path: Path) -> None:
    entries = ["experiment=smoke", "+sampler=ngame", "+negatives=[gist,queue]",
               "negatives.gist.guide._target_=hnm.encoders.factory.minilm_encoder",
               "loss.teacher='${encoder}'", "data=beir", "data.path=/x", "seed=3"]
    assert check_overrides(entries, "f") == entries
    folder = interrupted_run(tmp_path / "run", entries)
    argv = expand_resume([f"resume={folder}", "seed=4"])
    assert argv[:7] == entries[:7] and "seed=3" not in argv and "seed=4" in argv
    assert argv[-2:] == [f"hydra.run.dir={folder}", "hydra.output_subdir=null"]


def test_overrides_that_are_not_a_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a list of overrides"):
        check_overrides({"a": 1}, "f")
    folder = interrupted_run(tmp_path / "run", [])
    (folder / ".hydra" / "overrides.yaml").write_text("[unclosed")
    with pytest.raises(ConfigError, match="cannot read the run's overrides"):
        expand_resume([f"resume={folder}"])


def test_a_checkpoint_rebuilds_only_hnm_classes() -> None:
    from hnm.state import _decode

    for name in ("hnm.encoders.factory:torch.nn.Module", "os:system",
                 "hnm.train:L.Trainer", "hnm.received:Path"):
        with pytest.raises(ValueError, match="refusing to rebuild"):
            _decode({"__object__": name, "attrs": {}}, None, {})
    with pytest.raises(ValueError, match="unknown numpy bit generator"):
        _decode({"__np_generator__": {}, "bit_generator": "seed"}, None, {})
