"""``hnm mine`` checks that it can write its output before it mines, and names ``output=``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.cli import main


def _mine(tmp_path: Path, output: str, capsys) -> str:
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        main(["mine", "experiment=smoke", "logger=none", "miner=bm25", f"output={output}",
              f"hydra.run.dir={run}"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and err.startswith("hnm: error: ")
    assert f"output={output}" in err and "hydra.run.dir" not in err, err
    assert not run.exists()  # refused before the run folder, long before mining
    return err


def test_an_output_under_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    err = _mine(tmp_path, str(tmp_path / "afile" / "sub" / "negs.jsonl"), capsys)
    assert "is not a folder" in err and "output=PATH" in err


def test_an_unwritable_output(tmp_path: Path, capsys) -> None:
    err = _mine(tmp_path, "/proc/hnm-nope/negs.jsonl", capsys)
    assert "cannot be written" in err


def test_an_existing_output_or_a_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "negs.jsonl").write_text("{}\n")
    assert "never overwrites" in _mine(tmp_path, str(tmp_path / "negs.jsonl"), capsys)
    (tmp_path / "folder").mkdir()
    assert "is a folder" in _mine(tmp_path, str(tmp_path / "folder"), capsys)
