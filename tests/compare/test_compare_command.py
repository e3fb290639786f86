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


def _rows(out: Path, metric: str = "ndcg@10") -> dict[str, dict[str, str]]:
    """compare.csv's lines of ``metric``, by group label."""
    text = (out / "compare.csv").read_text()
    return {r["group"]: r for r in csv.DictReader(io.StringIO(text)) if r["metric"] == metric}


def test_planted_group_is_significant_identical_is_not(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    out = compare(parser().parse_args([str(sweep), "--resamples", "2000"]))
    assert out.parent == sweep and out.name.startswith("compare-")
    rows = _rows(out)
    assert rows["defaults"]["baseline"] == "True" and rows["defaults"]["p"] == ""
    better, same = rows["+sampler=ngame"], rows["loss.temperature=0.1"]
    assert float(better["p"]) < 0.05 and float(better["p_randomisation"]) < 0.05
    assert float(better["p_queries_ttest"]) <= float(better["p"])  # seeds add uncertainty
    assert better["test"] == "t-test over queries and seeds" and better["split"] == "test"
    assert better["paired_seeds"] == "True" and float(better["se_seeds"]) >= 0
    assert float(better["delta"]) == pytest.approx(0.08, abs=0.01)
    assert float(better["ci_low"]) > 0
    # Holm over the two tested groups: the smaller p doubled (or capped at 1)
    assert float(better["p_holm"]) == pytest.approx(min(1.0, 2 * float(better["p"])))
    assert 0 < float(better["mde_80"]) < 0.08 and better["seeds_needed"] == "2"
    assert float(same["p"]) == pytest.approx(1.0)
    assert float(same["p_randomisation"]) == pytest.approx(1.0)
    assert same["seeds_needed"] == "" and "0" in same["seeds_note"]
    assert better["n_seeds"] == "2" and better["queries"] == "60"
    assert float(better["std"]) == pytest.approx(0.0, abs=0.01)
    assert set(_rows(out, "recall@100")) == set(rows)  # every tested metric has its lines
    printed = capsys.readouterr().out
    assert "p (queries only)" in printed and "Holm p" in printed and "+sampler=ngame" in printed
    assert "baseline" in printed
    png = (out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (out / "compare.md").read_text()
    assert "Split: **test**" in md and "| # | group |" in md and "Holm p" in md
    assert md.split("## Δ")[0].count("\n| ") == 4
    assert (out / "curves.png").is_file() and (out / "compare.html").is_file()


def test_baseline_flag_and_missing_per_query(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    (sweep / "4" / "test_per_query.jsonl").unlink()  # one seed of the +sampler group
    out = compare(parser().parse_args([str(sweep), "--baseline", "temperature",
                                       "--out", str(tmp_path / "cmp")]))
    rows = _rows(out)
    assert rows["loss.temperature=0.1"]["baseline"] == "True"
    assert float(rows["defaults"]["p"]) == pytest.approx(1.0)
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
    with pytest.raises(HnmError, match="expected final, zero_shot or the runs' split"):
        compare(parser().parse_args([str(sweep), "--stage", "dev"]))


def test_single_run_without_per_query_or_curve(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", seed=1, overrides=[], config={}, per_query={"q": 0.3})
    (run / "test_per_query.jsonl").unlink()
    out = compare(parser().parse_args([str(run)]))
    assert _rows(out)["defaults"]["mean"] == "0.3"
    assert (out / "compare.png").stat().st_size > 0


def test_cli_error_is_one_paragraph(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "hnm.cli", "compare", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "no such folder" in out.stderr and "Traceback" not in out.stderr
