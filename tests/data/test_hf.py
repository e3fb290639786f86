"""Hugging Face loader, tested on folders written by ``datasets.save_to_disk`` (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.data import hf
from hnm.data.hf import load_hf
from hnm.errors import DataError

datasets = pytest.importorskip("datasets")

CORPUS = {"_id": ["d1", "d2", "d3"], "title": ["Sort", None, "Dates"],
          "text": ["sort a list", "open a file", "parse a date"]}
QUERIES = {"_id": ["q1", "q2"], "text": ["how to sort", "read a file"]}
TRAIN = {"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": [1, 2]}
TEST = {"query-id": ["q1"], "corpus-id": ["d3"], "score": [1]}


def _dd(**splits: dict) -> datasets.DatasetDict:
    return datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()})


def test_single_datasetdict(tmp_path: Path) -> None:
    _dd(corpus=CORPUS, queries=QUERIES, train=TRAIN, test=TEST).save_to_disk(tmp_path / "sd")
    data = load_hf(str(tmp_path / "sd"))
    assert data.name == "sd"
    assert data.corpus["d2"] == {"title": "", "text": "open a file"}
    assert data.queries == {"q1": "how to sort", "q2": "read a file"}
    assert data.qrels == {"train": {"q1": {"d1": 1}, "q2": {"d2": 2}}, "test": {"q1": {"d3": 1}}}
    assert list(load_hf(str(tmp_path / "sd"), splits=["test"]).qrels) == ["test"]
    with pytest.raises(DataError, match="no qrels split dev"):
        load_hf(str(tmp_path / "sd"), splits=["dev"])


def test_subfolders_mteb_style(tmp_path: Path) -> None:
    root = tmp_path / "mteb"
    _dd(corpus={**CORPUS, "_id": [1, 2, 3]}).save_to_disk(root / "corpus")
    datasets.Dataset.from_dict(QUERIES).save_to_disk(root / "queries")
    _dd(test={"query_id": ["q1"], "corpus_id": [3], "score": [1]}).save_to_disk(root / "qrels")
    data = load_hf(str(root))
    assert set(data.corpus) == {"1", "2", "3"}
    assert data.qrels == {"test": {"q1": {"3": 1}}}


def test_missing_column_and_folder(tmp_path: Path) -> None:
    _dd(corpus={"_id": ["d1"], "body": ["x"]}, queries=QUERIES, test=TEST).save_to_disk(
        tmp_path / "bad")
    with pytest.raises(DataError, match="corpus has no column 'text'"):
        load_hf(str(tmp_path / "bad"))
    with pytest.raises(DataError, match="no such folder"):
        load_hf(str(tmp_path / "absent"))
    datasets.Dataset.from_dict(QUERIES).save_to_disk(tmp_path / "flat")
    with pytest.raises(DataError, match="expected a DatasetDict"):
        load_hf(str(tmp_path / "flat"))


def test_hub_failure_is_a_data_error(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'mteb/scifact' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"'mteb/scifact'.*Hub access is off.*data=beir"):
        hf.load_hf("mteb/scifact")
