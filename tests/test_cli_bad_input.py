"""Bad input through the real ``hnm`` command (subprocess): exit 2, one paragraph, no
traceback. The in-process tests (tests/test_bad_config.py, tests/data/test_bad_input.py) cover
each case; these check the whole path once for a file and once for a knob."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.beir_fixture import write_beir
from tests.test_cli import run


@pytest.mark.slow
def test_duplicate_document_id_is_refused(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "dup")
    first = json.loads((folder / "corpus.jsonl").read_text().splitlines()[0])
    with open(folder / "corpus.jsonl", "a") as f:
        f.write(json.dumps({**first, "text": "a second document with the same id"}) + "\n")
    n = len((folder / "corpus.jsonl").read_text().splitlines())
    out = run(["train", "experiment=smoke", "logger=none", "data=beir", f"data.path={folder}",
               f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert f"corpus.jsonl line {n}: '_id' {first['_id']!r} repeats line 1" in out.stderr
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and status["user_error"] is True


@pytest.mark.slow
def test_strategy_knob_out_of_range_and_of_the_wrong_type(tmp_path: Path) -> None:
    out = run(["train", "experiment=smoke", "logger=none", "+negatives=[queue,prebatch]",
               "negatives.queue.momentum=-1", "negatives.prebatch.k=abc",
               f"hydra.run.dir={tmp_path / 'r'}"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    # the type check runs first, before anything is built
    assert "hnm: error: negatives.prebatch.k='abc' is not valid; expected an integer" \
        in out.stderr
