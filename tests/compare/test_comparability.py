"""``hnm compare`` refuses groups evaluated on different splits, datasets or query subsets, and
warns about different seed sets, zero-shot metrics and training data."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from hnm.commands.compare import compare, parser
from hnm.errors import ConfigError
from tests.compare.fake_runs import plain, with_sampler, write_run

PQ = {f"q{i}": 0.3 + 0.01 * i for i in range(20)}
BETTER = {q: v + 0.05 for q, v in PQ.items()}


def _pair(root: Path, seeds=(1, 2), other_seeds=(1, 2), **kw) -> Path:
    for s in seeds:
        write_run(root / f"base{s}", seed=s, overrides=[], config=plain(), per_query=PQ,
                  **kw.get("base", {}))
    for s in other_seeds:
        write_run(root / f"ngame{s}", seed=s, overrides=["+sampler=ngame"],
                  config=with_sampler(), per_query=BETTER, **kw.get("other", {}))
    return root


def _run(root: Path, tmp: Path, *extra: str):
    return compare(parser().parse_args([str(root), "--resamples", "200", "--wandb", "off",
                                        "--out", str(tmp / "cmp"), *extra]))


def test_different_splits_are_refused_with_exit_2(tmp_path: Path) -> None:
    root = _pair(tmp_path / "runs", other={"split": "dev"})
    with pytest.raises(ConfigError, match="different splits.*test.*dev"):
        _run(root, tmp_path)
    assert not (tmp_path / "cmp").exists()
    done = subprocess.run([sys.executable, "-m", "hnm.cli", "compare", str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "different splits" in done.stderr
    assert "Traceback" not in done.stderr


def test_different_query_subsets_and_datasets_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_run(root / "base1", seed=1, overrides=[], config=plain(), per_query=PQ)
    fewer = dict(list(BETTER.items())[:10])  # e.g. another eval.evaluator.max_queries
    write_run(root / "ngame1", seed=1, overrides=["+sampler=ngame"], config=with_sampler(),
              per_query=fewer)
    with pytest.raises(ConfigError, match="other toy queries.*10 vs 20 queries"):
        _run(root, tmp_path)
    other = tmp_path / "other"
    write_run(other / "base1", seed=1, overrides=[], config=plain(), per_query=PQ)
    write_run(other / "ngame1", seed=1, overrides=["+sampler=ngame"], config=with_sampler(),
              per_query=BETTER, dataset="other_data")
    with pytest.raises(ConfigError, match="evaluated on other_data"):
        _run(other, tmp_path)


def test_dev_runs_are_labelled_dev_and_legacy_test_keys_follow_the_config(tmp_path: Path,
                                                                          capsys) -> None:
    root = _pair(tmp_path / "runs", base={"split": "dev"}, other={"split": "dev"})
    out = _run(root, tmp_path)
    printed = capsys.readouterr().out
    assert "dev metrics of 4 runs" in printed and "test metrics" not in printed
    md = (out / "compare.md").read_text()
    assert "Split: **dev**" in md and "| dev ndcg@10 |" in md
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["split"] for r in rows} == {"dev"}
    # a run written before keys named the split: test/… keys, data.eval_split=dev
    legacy = tmp_path / "legacy"
    write_run(legacy / "a", seed=1, overrides=[], config=plain(), per_query=PQ)
    cfg = (legacy / "a" / ".hydra" / "config.yaml")
    cfg.write_text(cfg.read_text().replace("eval_split: test", "eval_split: dev"))
    out = compare(parser().parse_args([str(legacy), "--wandb", "off"]))
    assert "Split: **dev**" in (out / "compare.md").read_text()


def test_seed_sets_zero_shot_and_data_warnings(tmp_path: Path, capsys) -> None:
    ctx = {"dataset": "toy", "train_fp": "aaa", "corpus_fp": "c"}
    root = _pair(tmp_path / "runs", seeds=(42,), other_seeds=(1, 2),
                 base={"zero_shot": 0.08}, other={"zero_shot": 0.125})
    _run(root, tmp_path)
    err = capsys.readouterr().err
    assert "seed sets differ" in err and "seeds 1, 2; baseline: 42" in err
    assert "zero-shot ndcg@10 differs" in err and "0.1250" in err and "0.0800" in err
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "seed sets differ" in md and "zero-shot ndcg@10 differs" in md
    same = _pair(tmp_path / "same", base={"context": ctx},
                 other={"context": {**ctx, "train_fp": "bbb"}})
    compare(parser().parse_args([str(same), "--wandb", "off", "--out", str(tmp_path / "c2")]))
    err = capsys.readouterr().err
    assert "seed sets differ" not in err and "zero-shot" not in err
    assert "other training pairs than the baseline's run of that seed" in err


def test_per_seed_deltas_are_paired_when_seeds_match(tmp_path: Path) -> None:
    root = _pair(tmp_path / "runs")
    out = _run(root, tmp_path)
    row = next(r for r in csv.DictReader((out / "compare.csv").open())
               if r["group"] == "+sampler=ngame" and r["metric"] == "ndcg@10")
    assert row["paired_seeds"] == "True"
    assert [float(x) for x in row["seed_deltas"].split()] == pytest.approx([0.05, 0.05])


def test_query_sets_are_checked_through_fingerprints_too(tmp_path: Path, capsys) -> None:
    """A baseline without per-query files (its context names its queries) cannot hide a group
    evaluated on other queries; runs with neither are named in a warning."""
    from hnm.runcontext import fingerprint

    root = tmp_path / "runs"
    base = write_run(root / "base1", seed=1, overrides=[], config=plain(), per_query=PQ,
                     context={"dataset": "toy", "eval_fp": fingerprint(sorted(PQ))})
    (base / "test_per_query.jsonl").unlink()
    write_run(root / "ngame1", seed=1, overrides=["+sampler=ngame"], config=with_sampler(),
              per_query=dict(list(BETTER.items())[:10]))
    with pytest.raises(ConfigError, match="other toy queries"):
        _run(root, tmp_path)
    same = tmp_path / "same"
    base = write_run(same / "base1", seed=1, overrides=[], config=plain(), per_query=PQ)
    (base / "test_per_query.jsonl").unlink()  # no per-query file, no context
    write_run(same / "ngame1", seed=1, overrides=["+sampler=ngame"], config=with_sampler(),
              per_query=BETTER)
    _run(same, tmp_path)
    assert "cannot be checked" in capsys.readouterr().err


def test_other_start_weights_and_curve_subsets_are_warned(tmp_path: Path, capsys) -> None:
    root = _pair(tmp_path / "runs", base={"context": {"encoder_fp": "a", "val_fp": "x"}},
                 other={"context": {"encoder_fp": "b", "val_fp": "y"}})
    _run(root, tmp_path)
    err = capsys.readouterr().err
    assert "other encoder weights" in err and "different validation subsets" in err
