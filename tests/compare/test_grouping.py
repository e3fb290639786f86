"""Grouping runs by differing config values; seeds are replicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.compare.grouping import IGNORED, differing_keys, group_runs, pick_baseline
from hnm.compare.runs import find_runs, flatten
from hnm.errors import ConfigError, HnmError
from tests.compare.fake_runs import plain, planted_sweep, with_sampler, write_run


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": [2, {"d": 3}]}, "e": None, "f": {}}) == {
        "a.b": 1, "a.c.0": 2, "a.c.1.d": 3, "e": None, "f": {}}


def test_planted_sweep_groups_and_labels(tmp_path: Path) -> None:
    runs = find_runs([planted_sweep(tmp_path / "sweep")])
    assert [r.path.name for r in runs] == [str(i) for i in range(6)]
    groups = group_runs(runs)
    assert [g.label for g in groups] == ["defaults", "+sampler=ngame", "loss.temperature=0.1"]
    assert [sorted(r.config["seed"] for r in g.runs) for g in groups] == [[1, 2]] * 3
    assert "seed" not in differing_keys(runs) and "paths.cache_dir" not in differing_keys(runs)
    assert pick_baseline(groups, None) == 0
    assert pick_baseline(groups, "ngame") == 1
    assert pick_baseline(groups, "3") == 2
    assert pick_baseline(groups, "loss.temperature=0.1") == 2
    with pytest.raises(ConfigError, match="defaults"):
        pick_baseline(groups, "nothing-like-this")


def test_two_by_two_grid_with_seeds(tmp_path: Path) -> None:
    n = 0
    for sampler in (False, True):
        for t in (0.05, 0.1):
            for seed in (1, 2, 3):
                over = (["+sampler=ngame"] if sampler else []) + [f"loss.temperature={t}"]
                write_run(tmp_path / str(n), seed=seed, overrides=over,
                          config=with_sampler(t) if sampler else plain(t), per_query={"q": 0.5})
                n += 1
    groups = group_runs(find_runs([tmp_path]))
    assert len(groups) == 4 and all(len(g.runs) == 3 for g in groups)
    assert [g.label for g in groups] == [
        "loss.temperature=0.05", "loss.temperature=0.1", "+sampler=ngame loss.temperature=0.05",
        "+sampler=ngame loss.temperature=0.1"]
    assert [g.is_plain for g in groups] == [True, True, False, False]


def test_labels_fall_back_to_config_values(tmp_path: Path) -> None:
    # the same change made by different overrides: overrides cannot name the groups
    write_run(tmp_path / "a", seed=1, overrides=["experiment=x"], config=with_sampler(),
              per_query={"q": 1.0})
    write_run(tmp_path / "b", seed=1, overrides=["+sampler=ngame"], config=with_sampler(),
              per_query={"q": 1.0})
    write_run(tmp_path / "c", seed=1, overrides=[], config=plain(), per_query={"q": 1.0})
    groups = group_runs(find_runs([tmp_path]))
    assert [g.label for g in groups] == ["sampler=NGAMESampler", "sampler=none"]
    assert pick_baseline(groups, None) == 1


def test_ignore_more_keys(tmp_path: Path) -> None:
    write_run(tmp_path / "a", seed=1, overrides=["batch_size=8"], config={"batch_size": 8},
              per_query={"q": 1.0})
    write_run(tmp_path / "b", seed=2, overrides=["batch_size=16"], config={"batch_size": 16},
              per_query={"q": 1.0})
    runs = find_runs([tmp_path])
    assert len(group_runs(runs)) == 2
    assert len(group_runs(runs, (*IGNORED, "batch_size"))) == 1


def test_find_runs_errors(tmp_path: Path) -> None:
    with pytest.raises(HnmError, match="no such folder"):
        find_runs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HnmError, match="no finished run"):
        find_runs([tmp_path / "empty"])
