"""``hnm train experiment=smoke +poison=grammar`` writes the attack metrics and the poisoned set;
``hnm eval`` on its run folder reproduces them (slow: two CLI runs over the embedded corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.eval.test_eval_cmd import _cli

KEYS = [f"{m}@{k}" for m in ("asr", "clean_asr") for k in (1, 5, 10, 20)] + ["clean_ndcg@10"]


@pytest.mark.slow
def test_train_writes_attack_metrics_and_eval_reproduces_them(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _cli(["train", "experiment=smoke", "+poison=grammar", "logger=none",
                "eval.zero_shot=false", f"hydra.run.dir={run}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    for key in KEYS:
        assert f"test/stdlib_code/{key}" in trained, key
    assert "asr@10" in out.stdout and "clean_asr@10" in out.stdout  # the end-of-run table
    record = json.loads((run / "poison.json").read_text())
    assert record["poisoned_pairs"] == 1 and record["pairs"] == 256  # round(0.005 * 256) -> 1
    assert len(record["passages"]) == 8
    pq = [json.loads(line) for line in (run / "test_per_query.jsonl").read_text().splitlines()]
    assert all("clean_asr@10" in r for r in pq) and any("asr@10" in r for r in pq)

    again = _cli(["eval", f"model={run}", f"hydra.run.dir={tmp_path / 'ev'}"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    test_keys = sorted(k for k in trained if k.startswith("test/"))
    assert len(test_keys) == 4 + len(KEYS)
    assert {k: evaluated.get(k) for k in test_keys} == {k: trained[k] for k in test_keys}
