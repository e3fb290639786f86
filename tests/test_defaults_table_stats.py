"""The defaults table's one-seed rows: the seed noise a test over queries cannot see is added
from the baseline's seeds, so a run identical to one baseline seed is not called a change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "defaults_table.py"
spec = importlib.util.spec_from_file_location("defaults_table", SCRIPT)
assert spec is not None and spec.loader is not None
defaults_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(defaults_table)


def test_one_seed_ci_widens_by_the_baselines_seed_noise() -> None:
    # the dev table's case: an option identical to the baseline's seed 1 (0.6370) against its
    # 3-seed mean (0.6437, sd 0.0059) was "-0.0067 [-0.0115, -0.0019]" over queries alone
    low, high, p = defaults_table.one_seed_test(-0.0067, 0.00245, 0.0059, 3)
    assert low < 0 < high and p > 0.3
    assert high - low > 5 * (0.0115 - 0.0019)           # t(2) and the seed variance
    # without seed noise it reduces to a t-test over queries with the baseline's df
    low0, high0, _ = defaults_table.one_seed_test(-0.0067, 0.00245, 0.0, 3)
    assert high0 - low0 == pytest.approx(2 * 4.3027 * 0.00245, rel=1e-3)
    # a difference far beyond the seed noise stays visible
    assert defaults_table.one_seed_test(-0.10, 0.005, 0.0059, 3)[1] < 0
