"""``hnm eval model=RUN`` instantiates the run's data and eval nodes: a run folder from
elsewhere may only name hnm's own classes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.errors import DataError
from hnm.eval.targets import parse_model


def _run_folder(root: Path, target: str) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "modules.json").write_text("[]")
    (root / "config.yaml").write_text(
        "data:\n  name: x\n  source:\n    _target_: " + target + "\n    command: touch /tmp/x\n"
        "eval:\n  evaluator:\n    _target_: hnm.eval.evaluator.RetrievalEvaluator\n")
    return root


def test_a_foreign_target_is_refused(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "os.system")
    with pytest.raises(DataError) as err:
        parse_model(str(folder))
    assert "data.source._target_='os.system' names code outside hnm" in str(err.value)
    assert str(folder / "config.yaml") in str(err.value)


def test_hnm_targets_are_accepted(tmp_path: Path) -> None:
    folder = _run_folder(tmp_path / "run", "hnm.data.beir.load_beir")
    assert parse_model(str(folder)).kind == "run"
