"""TREC run and per-query metric files round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.errors import DataError
from hnm.eval import read_per_query, read_trec_run, write_per_query, write_trec_run


@pytest.mark.parametrize("name", ["run.trec", "run.trec.gz"])
def test_trec_run_round_trip(tmp_path: Path, name: str) -> None:
    run = {"q2": {"a": 0.5, "b": 0.25, "c": 0.5}, "q1": {"z": -1.0}}
    path = write_trec_run(run, tmp_path / "sub" / name, tag="exp")
    assert read_trec_run(path) == run
    if not name.endswith(".gz"):
        lines = path.read_text().splitlines()
        assert lines[0] == "q1 Q0 z 1 -1.0 exp"
        assert [ln.split()[2] for ln in lines[1:]] == ["c", "a", "b"]  # trec_eval order


def test_trec_run_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.trec"
    bad.write_text("q1 Q0 d1 1 0.5 tag\nq1 d2 2 0.4\n")
    with pytest.raises(DataError, match="bad.trec:2"):
        read_trec_run(bad)
    with pytest.raises(ValueError):
        write_trec_run({"q 1": {"d": 1.0}}, tmp_path / "x.trec")


@pytest.mark.parametrize("name", ["pq.jsonl", "pq.json", "pq.jsonl.gz"])
def test_per_query_round_trip(tmp_path: Path, name: str) -> None:
    per_query = {"q1": {"ndcg@10": 0.5, "mrr@10": 1.0}, "q0": {"ndcg@10": 0.0, "mrr@10": 0.0}}
    assert read_per_query(write_per_query(per_query, tmp_path / name)) == per_query


def test_per_query_errors(tmp_path: Path) -> None:
    bad = tmp_path / "pq.jsonl"
    bad.write_text('{"qid": "a", "ndcg@10": 1}\n{"ndcg@10": 1}\n')
    with pytest.raises(DataError, match="pq.jsonl:2"):
        read_per_query(bad)
