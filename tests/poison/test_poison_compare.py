"""``hnm compare`` shows the attack metrics and tests them query by query (``--metric asr@10``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from hnm.commands.compare import compare, parser
from hnm.report import before_after_table
from tests.compare.fake_runs import plain, with_sampler, write_run


def _poisoned_run(folder: Path, seed: int, sampler: bool, asr: dict[str, float]) -> None:
    pq = {q: 0.5 for q in asr}
    write_run(folder, seed=seed, overrides=["+sampler=ngame"] if sampler else [],
              config=with_sampler() if sampler else plain(), per_query=pq)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.update({"test/toy/asr@10": sum(asr.values()) / len(asr), "test/toy/clean_asr@10": 0.0,
                    "test/toy/clean_ndcg@10": 0.5})
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with open(folder / "test_per_query.jsonl", "w") as f:
        for q in asr:
            f.write(json.dumps({"qid": q, "ndcg@10": 0.5, "asr@10": asr[q],
                                "clean_asr@10": 0.0}) + "\n")


def test_compare_on_asr(tmp_path: Path, capsys) -> None:
    qids = [f"q{i}" for i in range(40)]
    for seed in (1, 2):
        _poisoned_run(tmp_path / "runs" / f"b{seed}", seed, False,
                      {q: float(i % 5 == 0) for i, q in enumerate(qids)})  # 0.2
        _poisoned_run(tmp_path / "runs" / f"n{seed}", seed, True,
                      {q: float(i % 5 != 4) for i, q in enumerate(qids)})  # 0.8
    out = compare(parser().parse_args([str(tmp_path / "runs"), "--metric", "asr@10",
                                       "--resamples", "500"]))
    rows = {(r["group"], r["metric"]): r
            for r in csv.DictReader(io.StringIO((out / "compare.csv").read_text()))}
    ngame = rows[("+sampler=ngame", "asr@10")]
    assert float(ngame["mean"]) == pytest.approx(0.8)
    assert float(ngame["delta"]) == pytest.approx(0.6)  # paired over the 40 queries
    assert float(ngame["p"]) < 0.01 and ngame["queries"] == "40"
    assert ("+sampler=ngame", "clean_asr@10") in rows
    assert ("+sampler=ngame", "clean_ndcg@10") in rows
    assert "asr@10" in capsys.readouterr().out


def test_end_of_run_table_shows_attack_rows_only_when_present() -> None:
    from rich.console import Console

    def rows(metrics: dict[str, float]) -> str:
        console = Console(width=200, record=True)
        console.print(before_after_table(metrics, "toy"))
        return console.export_text()

    plain_run = {"test/toy/ndcg@10": 0.5, "zero_shot/toy/ndcg@10": 0.4}
    assert "asr" not in rows(plain_run)
    text = rows({**plain_run, "test/toy/asr@10": 0.9, "zero_shot/toy/asr@10": 0.1})
    assert "asr@10" in text and "+0.8000" in text and "clean_asr@10" not in text
