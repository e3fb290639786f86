"""BEIR folder reader: happy path and one-paragraph errors that name file and line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hnm.data.beir import load_beir
from hnm.errors import DataError

CORPUS = [{"_id": "d1", "title": "Sorting", "text": "sort a list"},
          {"_id": 2, "title": "", "text": "open a file"},
          {"_id": "d3", "text": "parse a date"}]
QUERIES = [{"_id": "q1", "text": "how to sort"}, {"_id": 7, "text": "read a file"}]
QRELS = {"train": "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t1\n7\t2\t1\n",
         "test": "query-id\tcorpus-id\tscore\nq1\td3\t0\n7\t2\t1\n"}


def write(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS) -> Path:
    """Write a BEIR folder; ``corpus``/``queries`` are lists of objects or raw text."""
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        (root / name).write_text(text, encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in qrels.items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


def test_happy_path_graded(tmp_path: Path) -> None:
    data = load_beir(str(write(tmp_path / "tiny")))
    assert data.name == "tiny"
    assert data.corpus["2"] == {"title": "", "text": "open a file"}
    assert data.corpus["d3"]["title"] == ""
    assert data.queries == {"q1": "how to sort", "7": "read a file"}
    assert data.qrels["train"] == {"q1": {"d1": 2, "d3": 1}, "7": {"2": 1}}
    assert data.qrels["test"] == {"q1": {"d3": 0}, "7": {"2": 1}}
    assert data.doc_text("d1") == "Sorting: sort a list"


def test_splits_name_and_tilde(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "ds")
    data = load_beir("~/ds", name="custom", splits=["test"])
    assert data.name == "custom" and list(data.qrels) == ["test"]
    with pytest.raises(DataError, match=r"split 'dev'.*available splits: test, train"):
        load_beir("~/ds", splits=["dev"])


@pytest.mark.parametrize("path", [None, ""])
def test_path_required(path) -> None:
    with pytest.raises(DataError, match="data.path is required: pass data.path=DIR"):
        load_beir(path)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_beir(str(tmp_path / "nope"))
    root = write(tmp_path / "ds")
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="has no queries.jsonl"):
        load_beir(str(root))
    root = write(tmp_path / "ds2", qrels={})
    with pytest.raises(DataError, match="holds no qrels file"):
        load_beir(str(root))


def test_malformed_json_line(tmp_path: Path) -> None:
    good = "".join(json.dumps(r) + "\n" for r in CORPUS)
    root = write(tmp_path / "ds", corpus=good + "\n{not json\n")
    with pytest.raises(DataError, match=r"corpus.jsonl line 5: not valid JSON"):
        load_beir(str(root))
    root = write(tmp_path / "ds", queries='{"_id": "q1", "text": "x"}\n{"text": "no id"}\n')
    with pytest.raises(DataError, match=r"queries.jsonl line 2: missing '_id'"):
        load_beir(str(root))
    root = write(tmp_path / "ds", queries='["a", "b"]\n')
    with pytest.raises(DataError, match=r"queries.jsonl line 1: expected a JSON object"):
        load_beir(str(root))


@pytest.mark.parametrize("row, message", [
    ("q1\td1\n", "expected 3 tab-separated fields"),
    ("q1\td1\thigh\n", "score 'high' is not an integer"),
])
def test_malformed_tsv_row(tmp_path: Path, row: str, message: str) -> None:
    root = write(tmp_path / "ds", qrels={"dev": "query-id\tcorpus-id\tscore\nq1\td1\t1\n" + row})
    with pytest.raises(DataError, match=rf"qrels/dev.tsv line 3: {message}"):
        load_beir(str(root))


def test_unknown_ids_are_skipped_with_warning(tmp_path: Path, caplog) -> None:
    qrels = {"train": "q1\td1\t1\nq1\tghost\t1\nnobody\td1\t1\n"}
    with caplog.at_level(logging.WARNING):
        data = load_beir(str(write(tmp_path / "ds", qrels=qrels)))
    assert data.qrels["train"] == {"q1": {"d1": 1}}
    assert "unknown" in caplog.text


def test_all_unknown_ids_raise(tmp_path: Path) -> None:
    root = write(tmp_path / "ds", qrels={"test": "x\ty\t1\nq1\tz\t1\n"})
    with pytest.raises(DataError, match="qrels/test.*none of its 2 judgements"):
        load_beir(str(root))
