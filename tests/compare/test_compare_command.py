"""``hnm compare`` on synthetic run folders: planted effects, outputs, refusals."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from hnm.commands.compare import compare, parser
from hnm.errors import HnmError
from tests.compare.fake_runs import planted_sweep, write_run


def _rows(out: Path) -> dict[str, dict[str, str]]:
    text = (out / "compare.csv").read_text()
    return {r["group"]: r for r in csv.DictReader(io.StringIO(text))}


def test_planted_group_is_significant_identical_is_not(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    out = compare(parser().parse_args([str(sweep), "--resamples", "2000"]))
    assert out.parent == sweep and out.name.startswith("compare-")
    rows = _rows(out)
    assert rows["defaults"]["baseline"] == "True" and rows["defaults"]["p_ttest"] == ""
    better, same = rows["+sampler=ngame"], rows["loss.temperature=0.1"]
    assert float(better["p_ttest"]) < 0.05 and float(better["p_randomisation"]) < 0.05
    assert float(better["mean_diff"]) == pytest.approx(0.08, abs=0.01)
    assert float(better["ci_low"]) > 0
    assert float(same["p_ttest"]) == pytest.approx(1.0)
    assert float(same["p_randomisation"]) == pytest.approx(1.0)
    assert better["seeds"] == "2" and better["queries"] == "60"
    assert float(better["test/ndcg@10_std"]) == pytest.approx(0.0, abs=0.01)
    printed = capsys.readouterr().out
    assert "p (t-test)" in printed and "+sampler=ngame" in printed and "baseline" in printed
    png = (out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (out / "compare.md").read_text()
    assert "| # | group |" in md and "p (randomisation)" in md and md.split("## Compute")[0].count("\n| ") == 4


def test_baseline_flag_and_missing_per_query(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    (sweep / "4" / "test_per_query.jsonl").unlink()  # one seed of the +sampler group
    out = compare(parser().parse_args([str(sweep), "--baseline", "temperature",
                                       "--out", str(tmp_path / "cmp")]))
    rows = _rows(out)
    assert rows["loss.temperature=0.1"]["baseline"] == "True"
    assert float(rows["defaults"]["p_ttest"]) == pytest.approx(1.0)
    assert rows["+sampler=ngame"]["note"] == "no per-query file"
    assert "no test per-query file" in capsys.readouterr().out


def test_never_overwrites_and_user_errors(tmp_path: Path) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    out = tmp_path / "cmp"
    compare(parser().parse_args([str(sweep), "--out", str(out)]))
    before = (out / "compare.csv").read_text()
    with pytest.raises(HnmError, match="never overwrites"):
        compare(parser().parse_args([str(sweep), "--out", str(out)]))
    assert (out / "compare.csv").read_text() == before
    with pytest.raises(HnmError, match="ndcg@10"):
        compare(parser().parse_args([str(sweep), "--metric", "ndcg@1000",
                                     "--out", str(tmp_path / "x")]))
    assert not (tmp_path / "x").exists()
    with pytest.raises(HnmError, match="stages found: test, zero_shot"):
        compare(parser().parse_args([str(sweep), "--stage", "dev"]))


def test_single_run_without_per_query_or_curve(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seed=1, overrides=[], config={}, per_query={"q": 0.3})
    (run / "test_per_query.jsonl").unlink()
    out = compare(parser().parse_args([str(run)]))
    assert _rows(out)["defaults"]["test/ndcg@10_mean"] == "0.3"
    assert (out / "compare.png").stat().st_size > 0


def test_cli_error_is_one_paragraph(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "hnm.cli", "compare", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no such folder" in out.stderr and "Traceback" not in out.stderr
