"""``hnm compare`` leaves out runs that did not finish (status.json), with a note each; runs
from before status files existed still count."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hnm.commands.compare import compare, parser
from hnm.compare.runs import find_runs, skip_reason
from hnm.errors import HnmError
from tests.compare.fake_runs import mark, planted_sweep


def test_unfinished_and_failed_runs_are_skipped_with_a_note(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")  # six runs, no status.json (older runs)
    mark(sweep / "0", "finished")
    mark(sweep / "1", "failed", error="sampler.cluster_size=0 is not valid; expected >= 1")
    mark(sweep / "2", "interrupted", resume="hnm train resume=…")
    mark(sweep / "3", "running")
    (sweep / "3" / "metrics.json").unlink()  # a running run has no complete metrics.json
    (sweep / "6" / ".hydra").mkdir(parents=True)  # a job that failed before writing anything
    mark(sweep / "6", "failed", error="ValueError: boom")
    out = compare(parser().parse_args([str(sweep), "--resamples", "200"]))
    printed = capsys.readouterr().out
    assert "4 run(s) left out (not finished)" in printed
    assert f"{sweep / '1'}: skipped (failed: sampler.cluster_size=0 is not valid" in printed
    assert f"{sweep / '2'}: skipped (interrupted)" in printed
    assert f"{sweep / '3'}: skipped (running)" in printed
    assert f"{sweep / '6'}: skipped (failed: ValueError: boom)" in printed
    # left: 0 (finished; defaults, seed 1), 4 and 5 (no status.json; +sampler and
    # temperature, seed 2): three runs, one per group
    assert "metrics of 3 runs in 3 groups" in printed
    rows = [r for r in csv.DictReader((out / "compare.csv").open()) if r["metric"] == "ndcg@10"]
    assert [r["n_seeds"] for r in rows] == ["1", "1", "1"]


def test_skip_reason_and_counts(tmp_path: Path) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    assert skip_reason(sweep / "0") is None  # metrics.json, no status.json: counts
    mark(sweep / "0", "finished")
    assert skip_reason(sweep / "0") is None
    (sweep / "1" / "status.json").write_text("{not json")
    assert skip_reason(sweep / "1") == "unreadable status.json"
    (sweep / "2" / "metrics.json").unlink()
    mark(sweep / "2", "finished")
    assert skip_reason(sweep / "2") == "no metrics.json"
    notes: list[str] = []
    runs = find_runs([sweep], notes)
    assert len(runs) == 4 and len(notes) == 2


def test_nothing_finished_says_why(tmp_path: Path) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    for run in sorted(p for p in sweep.iterdir() if p.is_dir()):
        mark(run, "failed", error="OOM")
    with pytest.raises(HnmError, match=r"no finished run found.*6 run\(s\) below it did not "
                                       r"finish.*skipped \(failed: OOM\)"):
        find_runs([sweep])
