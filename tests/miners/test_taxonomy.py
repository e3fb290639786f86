"""Taxonomy negatives: siblings before cousins before random ones, by the configured mix."""

from __future__ import annotations

import json

import pytest

from hnm.data.beir import load_beir
from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError, DataError
from hnm.miners.taxonomy import TaxonomyMiner
from tests.miners.helpers import no_embed

TITLES = {
    "pos": "pkg.mod.Cls.f",
    "s1": "pkg.mod.Cls.g", "s2": "pkg.mod.Cls.h",            # siblings: same class
    "c1": "pkg.mod.helper", "c2": "pkg.mod.Other.k",         # cousins: same module
    "o1": "pkg.other.x", "o2": "zzz.a.b.c", "o3": "solo",     # neither
}


def _data(titles=TITLES, field="title") -> tuple[RetrievalData, TrainPairs]:
    corpus = {d: {"title": "", "text": f"text of {d}", field: t} if field != "title"
              else {"title": t, "text": f"text of {d}"} for d, t in titles.items()}
    data = RetrievalData("tax", corpus, {"q": "a query"}, {"train": {"q": {"pos": 1}}})
    return data, TrainPairs.from_split(data, "train")


def _mined(**kw) -> TaxonomyMiner:
    data, pairs = _data(**kw.pop("data_kw", {}))
    miner = TaxonomyMiner(verbose=False, **kw)
    miner.mine(data, pairs, no_embed, no_embed)
    return miner


def test_siblings_come_before_cousins_before_random() -> None:
    miner = _mined(num_negatives=5, mix={"siblings": 0.4, "cousins": 0.4, "random": 0.2})
    assert miner.quota == {"siblings": 2, "cousins": 2, "random": 1}
    for epoch in range(4):
        (row,), _ = miner.negatives([0], epoch, 0)
        assert set(row[:2]) == {"s1", "s2"}
        assert set(row[2:4]) == {"c1", "c2"}
        assert row[4] not in {"pos", *row[:4]}
    fx = miner.effect()
    assert fx["negatives_siblings"] == 8 and fx["negatives_cousins"] == 8
    assert fx["negatives_random"] == 4 and fx["negatives_padded"] == 0


def test_a_short_tier_hands_its_share_on() -> None:
    # 4 siblings wanted, 2 exist: cousins take the rest (2 exist), then random documents
    miner = _mined(num_negatives=5, mix={"siblings": 0.8, "cousins": 0.2})
    (row,), _ = miner.negatives([0], 0, 0)
    assert set(row[:2]) == {"s1", "s2"} and set(row[2:4]) == {"c1", "c2"}
    assert row[4] in {"o1", "o2", "o3"}
    assert miner.effect()["negatives_padded"] == 1


def test_draws_vary_by_epoch_and_are_reproducible() -> None:
    titles = {**TITLES, **{f"s{i}": f"pkg.mod.Cls.m{i}" for i in range(3, 12)}}
    miner = _mined(num_negatives=3, mix={"siblings": 1.0}, data_kw={"titles": titles})
    seen = [tuple(miner.negatives([0], e, 0)[0][0]) for e in range(5)]
    assert all(all(d.startswith("s") for d in s) for s in seen) and len(set(seen)) > 1
    again = _mined(num_negatives=3, mix={"siblings": 1.0}, data_kw={"titles": titles})
    assert [tuple(again.negatives([0], e, 0)[0][0]) for e in range(5)] == seen


def test_a_named_field_of_a_beir_corpus_line(tmp_path) -> None:
    (tmp_path / "qrels").mkdir()
    lines = [{"_id": d, "text": f"text of {d}", "metadata": {"category": t.split(".")}}
             for d, t in TITLES.items()]
    (tmp_path / "corpus.jsonl").write_text("\n".join(map(json.dumps, lines)))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "a query"}))
    (tmp_path / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\tpos\t1\n")
    data = load_beir(str(tmp_path), fields=["metadata.category"])
    assert data.corpus["s1"]["metadata.category"] == "pkg.mod.Cls.g"
    pairs = TrainPairs.from_split(data, "train")
    miner = TaxonomyMiner(field="metadata.category", num_negatives=2,
                          mix={"siblings": 1.0}, verbose=False)
    miner.mine(data, pairs, no_embed, no_embed)
    assert set(miner.negatives([0], 0, 0)[0][0]) == {"s1", "s2"}


def test_no_hierarchy_is_refused() -> None:
    with pytest.raises(DataError, match="miner.field='category'"):
        _mined(field="category")
    flat = {d: d for d in TITLES}  # one-part paths: no sibling, no cousin
    with pytest.raises(ConfigError, match="no training pair's positive has a sibling"):
        _mined(data_kw={"titles": flat})


@pytest.mark.parametrize("kw", [{"mix": {"random": 1.0}}, {"mix": {"sibling": 1.0}},
                                {"mix": {"siblings": -1.0, "cousins": 2.0}},
                                {"schedule": "easy_to_hard"}, {"teacher_scores": True},
                                {"separator": ""}])
def test_bad_knobs_are_config_errors(kw) -> None:
    with pytest.raises(ConfigError, match="miner\\."):
        TaxonomyMiner(**kw)
