"""BM25 finds lexically similar documents; STAR mixes hard and random negatives by its ratio."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError
from hnm.miners.bm25 import BM25Miner
from hnm.miners.dense_static import DenseStaticMiner
from hnm.miners.star import STARMiner
from tests.conftest import make_data
from tests.miners.helpers import no_embed, planted, table_embed


def words(text: str) -> set[str]:
    return set(re.findall(r"\w\w+", text.lower()))


def test_bm25_negatives_share_words_with_the_query() -> None:
    data = make_data()
    pairs = TrainPairs.from_split(data, "train")
    miner = BM25Miner(num_negatives=3, range_max=10, sampling_strategy="top", verbose=False)
    stats = miner.mine(data, pairs, no_embed, no_embed)
    assert stats["queries"] == len(set(pairs.qids))
    for q, qid in enumerate(miner.qids):
        topic = qid.split("_")[0].replace("q", "d")
        n = int(miner.pool.count[q])
        assert n > 0
        for r in miner.pool.idx[q, :n]:
            doc = miner.doc_ids[int(r)]
            assert doc not in pairs.positives[qid]
            assert words(data.queries[qid]) & words(data.doc_text(doc))
        # the best lexical negative is a document of the same topic (shared phrase)
        assert miner.doc_ids[int(miner.pool.idx[q, 0])].startswith(topic + "_")
        assert np.all(np.diff(miner.pool.scores[q, :n]) <= 0)
    assert np.isfinite(miner.pos_scores).all() and (miner.pos_scores > 0).all()


def test_bm25_drops_documents_without_shared_words() -> None:
    data, pairs = planted(10, 2)
    data.queries["q0"] = "zebra"
    data.corpus["d5"]["text"] = "a zebra crossing"
    data.corpus["d0"]["text"] = "zebra stripes"
    miner = BM25Miner(num_negatives=2, verbose=False)
    stats = miner.mine(data, pairs, no_embed, no_embed)
    assert miner.pool.count[0] == 1 and miner.doc_ids[int(miner.pool.idx[0, 0])] == "d5"
    assert stats["short_queries"] == 2


def star_miner(ratio: float) -> tuple[STARMiner, object]:
    rng = np.random.default_rng(1)
    data, pairs = planted(60, 5)
    texts = [data.queries[q] for q in data.queries] + [data.doc_text(d) for d in data.corpus]
    embed = table_embed(dict(zip(texts, rng.standard_normal((len(texts), 8)))))
    miner = STARMiner(random_ratio=ratio, num_negatives=4, range_max=4,
                      sampling_strategy="top", verbose=False)
    miner.mine(data, pairs, embed, embed)
    return miner, pairs


@pytest.mark.parametrize(("ratio", "n_random"), [(0.0, 0), (0.5, 2), (0.75, 3), (1.0, 4)])
def test_star_mixes_hard_and_random_by_ratio(ratio: float, n_random: int) -> None:
    miner, pairs = star_miner(ratio)
    for epoch in range(3):
        negs, _ = miner.negatives(range(len(pairs)), epoch, 0)
        for p, row in enumerate(negs):
            q = int(miner.pair_qrow[p])
            hard = {miner.doc_ids[int(r)] for r in miner.pool.idx[q, : miner.pool.count[q]]}
            assert len(row) == 4 and len(set(row)) == 4
            assert row[: 4 - n_random] == [miner.doc_ids[int(r)]
                                           for r in miner.pool.idx[q, : 4 - n_random]]
            assert not set(row[4 - n_random:]) & hard
            assert not set(row) & pairs.positives[pairs.qids[p]]
    assert miner.last_stats["short_queries"] == 0


def test_star_random_part_changes_with_the_epoch() -> None:
    miner, _ = star_miner(0.5)
    seen = {tuple(miner.negatives([0], e, 0)[0][0][2:]) for e in range(5)}
    assert len(seen) > 1


def test_star_ratio_is_validated() -> None:
    with pytest.raises(ConfigError, match="random_ratio"):
        STARMiner(random_ratio=1.5)


def test_dense_static_uses_its_own_encoder(tiny_model) -> None:
    data = make_data()
    pairs = TrainPairs.from_split(data, "train")
    miner = DenseStaticMiner(encoder=tiny_model, num_negatives=2, verbose=False)
    stats = miner.mine(data, pairs, no_embed, no_embed)
    assert stats["queries"] == len(set(pairs.qids)) and stats["short_queries"] == 0
