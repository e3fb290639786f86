"""``hnm compare`` says when groups differ in more than their strategy, and what each cost."""

from __future__ import annotations

import json
from pathlib import Path

from hnm.commands.compare import compare, parser
from hnm.compare.conditions import condition_differences, exposure_differences
from hnm.compare.grouping import group_runs
from hnm.compare.runs import find_runs
from tests.compare.fake_runs import plain, planted_sweep, with_sampler, write_run

PQ = {f"q{i}": 0.3 + 0.01 * i for i in range(10)}


def _set_metrics(run: Path, **values: float) -> None:
    m = json.loads((run / "metrics.json").read_text())
    m.update({k.replace("__", "/"): v for k, v in values.items()})
    (run / "metrics.json").write_text(json.dumps(m))


def _groups(root: Path):
    groups = group_runs(find_runs([root]))
    return groups, next(i for i, g in enumerate(groups) if g.label == "defaults")


def test_strategy_and_loss_differences_are_not_conditions(tmp_path: Path, capsys) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    groups, base = _groups(sweep)
    assert condition_differences(groups, base) == []
    assert exposure_differences(groups, base) == []
    out = compare(parser().parse_args([str(sweep), "--resamples", "200"]))
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err and "WARNING" not in (out / "compare.md").read_text()
    assert "Compute per group" in captured.out


def test_a_different_dropout_beside_the_strategy_is_named(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_run(root / f"base{seed}", seed=seed, overrides=[], config=plain(), per_query=PQ)
        write_run(root / f"ngame{seed}", seed=seed,
                  overrides=["+sampler=ngame", "module.dropout=false"],
                  config={**with_sampler(), "module": {"dropout": False}}, per_query=PQ)
    groups, base = _groups(root)
    diffs = condition_differences(groups, base)
    assert [d.key for d in diffs] == ["module.dropout"]
    assert "module.dropout = False (baseline: (absent))" in diffs[0].line()
    out = compare(parser().parse_args([str(root), "--resamples", "200",
                                       "--baseline", "defaults"]))
    err = capsys.readouterr().err
    assert "not only in strategy" in err and "module.dropout" in err
    assert "module.dropout" in (out / "compare.md").read_text().split("## Compute")[1]


def test_different_exposure_and_compute_are_reported(tmp_path: Path, capsys) -> None:
    root = tmp_path / "runs"
    for seed in (1, 2):
        a = write_run(root / f"base{seed}", seed=seed, overrides=[], config=plain(),
                      per_query=PQ)
        b = write_run(root / f"ngame{seed}", seed=seed, overrides=["+sampler=ngame"],
                      config=with_sampler(), per_query=PQ)
        _set_metrics(a, train__pairs=64.0, time__fit_s=10.0)
        _set_metrics(b, train__pairs=48.0, time__fit_s=30.0)  # a sampler that dropped pairs
    groups, base = _groups(root)
    assert condition_differences(groups, base) == []
    lines = exposure_differences(groups, base)
    assert len(lines) == 1 and "train/pairs = 48 (baseline: 64)" in lines[0]
    compare(parser().parse_args([str(root), "--resamples", "200"]))
    captured = capsys.readouterr()
    assert "exposure differs" in captured.err
    table = captured.out.split("Compute per group")[1]
    assert "3.00" in table and "1.00" in table  # fit time 30 s vs 10 s
