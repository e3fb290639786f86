"""Writing a run: a full disk or a folder hnm cannot write to ends in one paragraph naming the
file (exit 2), and leaves no half-written file behind (temp file + rename, removed on failure)."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest

from hnm.cli import main
from hnm.entry import _friendly, user_message
from hnm.miners.io import write_negatives
from hnm.runinfo import read_status, write_json, write_status


class _FullDisk:
    """A file whose ``write`` stores half of what it is given, then fails as a full disk."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def write(self, data):
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Every file opened for writing under the test's folder hits a full disk."""
    real = builtins.open

    def fake(file, mode="r", *args, **kwargs):
        fh = real(file, mode, *args, **kwargs)
        inside = isinstance(file, (str, os.PathLike)) and str(tmp_path) in os.fspath(file)
        return _FullDisk(fh) if ("w" in mode and inside) else fh

    monkeypatch.setattr(builtins, "open", fake)
    monkeypatch.setattr(io, "open", fake)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_json_on_a_full_disk_leaves_nothing(tmp_path: Path, full_disk) -> None:
    with pytest.raises(OSError) as err:
        write_json(tmp_path / "metrics.json", {"test/x/ndcg@10": 0.5})
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "metrics.json")
    assert _leftovers(tmp_path) == []  # neither metrics.json nor its temp file
    message = user_message(err.value)
    assert message is not None and str(tmp_path / "metrics.json") in message
    assert "No space left on device" in message and "disk is full" in message


def test_write_status_on_a_full_disk_keeps_the_last_status(tmp_path: Path, monkeypatch) -> None:
    write_status(tmp_path, "running", step=3)
    real = builtins.open
    monkeypatch.setattr(io, "open", lambda f, m="r", *a, **k: _FullDisk(real(f, m, *a, **k))
                        if "w" in m else real(f, m, *a, **k))
    with pytest.raises(OSError, match="No space left"):
        write_status(tmp_path, "failed", error="x")
    monkeypatch.undo()
    assert _leftovers(tmp_path) == ["status.json"]
    assert read_status(tmp_path)["state"] == "running"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_negatives_on_a_full_disk_leaves_nothing(tmp_path: Path, suffix: str,
                                                      full_disk, monkeypatch) -> None:
    if suffix == ".parquet":
        pq = pytest.importorskip("pyarrow.parquet")

        def full(table, where, *a, **k):
            Path(where).write_bytes(b"PAR1 half")  # a half-written file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(pq, "write_table", full)
    path = tmp_path / f"neg{suffix}"
    with pytest.raises(OSError) as err:
        write_negatives(path, [{"qid": "q1", "neg_ids": ["d1", "d2"]}] * 50)
    assert err.value.filename == str(path)
    assert _leftovers(tmp_path) == []


def test_the_cli_reports_a_full_disk_in_one_paragraph(tmp_path: Path, full_disk,
                                                      capsys) -> None:
    @_friendly
    def job(cfg) -> None:
        write_json(tmp_path / "metrics.json", {"a": 1})

    with pytest.raises(SystemExit) as stop:
        job(None)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{tmp_path / 'metrics.json'}: No space left" in err


def test_eval_outputs_on_a_full_disk_leave_nothing(tmp_path: Path, full_disk) -> None:
    from hnm.eval.run_io import write_per_query, write_trec_run

    with pytest.raises(OSError, match="No space left"):
        write_trec_run({"q1": {"d1": 1.0, "d2": 0.5}}, tmp_path / "test_run.trec")
    with pytest.raises(OSError, match="No space left"):
        write_per_query({"q1": {"ndcg@10": 1.0}}, tmp_path / "test_per_query.jsonl")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["proc", "file", "readonly"])
def test_run_folder_that_cannot_be_written(tmp_path: Path, where: str, capsys,
                                           monkeypatch) -> None:
    if where == "proc":
        run_dir = Path("/proc/hnm-not-writable/run")
    elif where == "file":
        (tmp_path / "afile").write_text("x")
        run_dir = tmp_path / "afile" / "run"
    else:  # a read-only folder (simulated: the tests may run as root, who may write anywhere)
        run_dir = tmp_path / "ro" / "run"
        real_mkdir = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if "ro" in self.parts:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(SystemExit) as stop:
        main(["train", "experiment=smoke", "logger=none", f"hydra.run.dir={run_dir}"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot create the run folder" in err
    assert str(run_dir.parent if where == "file" else run_dir)[:20] in err
    assert "hydra.run.dir=DIR" in err
