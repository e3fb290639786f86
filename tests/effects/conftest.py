"""Fixtures shared by the effect tests."""

from __future__ import annotations

import pytest

from tests.effects.harness import Recording, record_fit


@pytest.fixture(scope="session")
def baseline(tmp_path_factory) -> Recording:
    """The default run (random batches, in-batch negatives) on the planted data, once."""
    return record_fit(tmp_path_factory.mktemp("baseline"), [])
