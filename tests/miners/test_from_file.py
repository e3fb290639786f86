"""Negatives files: `hnm mine`'s writer round-trips through +miner=from_file; bad input is named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from hnm.errors import DataError, HnmError
from hnm.miners.from_file import FromFileMiner
from hnm.miners.io import meta_path, read_negatives, write_negatives
from tests.miners.helpers import FixedMiner, no_embed, planted
from tests.miners.test_base import ranking


def source(**kw) -> tuple[FixedMiner, object, object]:
    data, pairs = planted(30, 4, {"q1": ["d4", "d7"]})
    miner = FixedMiner(ranking(30, 4), verbose=False, **kw)
    miner.mine(data, pairs, no_embed, no_embed)
    return miner, data, pairs


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("strategy", ["top", "random"])
def test_round_trip_gives_the_same_negatives(tmp_path: Path, suffix: str, strategy: str) -> None:
    knobs = dict(num_negatives=3, sampling_strategy=strategy, teacher_scores=True, seed=7)
    miner, data, pairs = source(range_min=1, range_max=12, **knobs)
    path = tmp_path / f"neg{suffix}"
    assert write_negatives(path, miner.records(), {"miner": "x"}) == 4
    assert json.loads(meta_path(path).read_text()) == {"miner": "x"}
    loaded = FromFileMiner(str(path), verbose=False, **knobs)
    stats = loaded.mine(data, pairs, no_embed, no_embed)
    assert stats["short_queries"] == 0
    for epoch in range(3):
        a_ids, a_t = miner.negatives(range(len(pairs)), epoch, 0)
        b_ids, b_t = loaded.negatives(range(len(pairs)), epoch, 0)
        assert a_ids == b_ids
        np.testing.assert_allclose(a_t, b_t, atol=1e-6)


def test_never_overwrites(tmp_path: Path) -> None:
    miner, _, _ = source()
    path = tmp_path / "neg.jsonl"
    write_negatives(path, miner.records())
    before = path.read_text()
    with pytest.raises(HnmError, match="never overwrites"):
        write_negatives(path, miner.records())
    assert path.read_text() == before


@pytest.mark.parametrize(("line", "what"), [
    ('{"qid": "q0", "neg_ids": ', "not valid JSON"),
    ('{"neg_ids": ["d1"]}', "needs 'qid' and 'neg_ids'"),
    ('{"qid": "q0", "neg_ids": "d1"}', "list of document ids"),
    ('{"qid": "q0", "neg_ids": ["d1"], "neg_scores": [0.1, 0.2]}', "as long as"),
    ('[1, 2]', "JSON object"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, what: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"qid": "q0", "neg_ids": ["d3"]}\n\n' + line + "\n")
    with pytest.raises(DataError, match=what) as err:
        list(read_negatives(path))
    assert f"{path}, line 3" in str(err.value)


def test_unknown_ids_are_reported_and_skipped(tmp_path: Path, caplog) -> None:
    data, pairs = planted(30, 4)
    path = tmp_path / "neg.jsonl"
    rows = [{"qid": "q0", "neg_ids": ["d3", "nope1", "d0", "d5"]},
            {"qid": "ghost", "neg_ids": ["d3"]},
            {"qid": "q2", "neg_ids": ["nope2", "nope3"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    miner = FromFileMiner(str(path), num_negatives=2, sampling_strategy="top", verbose=False)
    with caplog.at_level(logging.WARNING):
        stats = miner.mine(data, pairs, no_embed, no_embed)
    text = caplog.text
    assert "1 of 3 records" in text and "'ghost'" in text
    assert "3 negative ids are not in the corpus" in text and "'nope1'" in text
    assert "2 of 4 training queries have no record" in text
    neg, _ = miner.negatives([0], 0, 0)
    assert neg[0] == ["d3", "d5"]  # the unknown id and the positive d0 are skipped
    assert stats["removed_positive"] == 1 and stats["short_queries"] == 3


def test_no_usable_negative_fails_with_the_file(tmp_path: Path) -> None:
    data, pairs = planted(30, 4)
    path = tmp_path / "neg.jsonl"
    path.write_text('{"qid": "other", "neg_ids": ["x"]}\n{"qid": "q1", "neg_ids": ["zz"]}\n')
    with pytest.raises(DataError, match="no usable negative") as err:
        FromFileMiner(str(path), verbose=False).mine(data, pairs, no_embed, no_embed)
    assert str(path) in str(err.value)


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="hnm mine"):
        FromFileMiner(str(tmp_path / "none.jsonl"), verbose=False)
