"""BM25Model: scores equal a hand-written Lucene BM25 loop, identifiers split into words, and
its evaluation equals scoring its run with the evaluator's judgements."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError
from hnm.eval import RetrievalEvaluator, evaluate_run
from hnm.eval.bm25_model import BM25Model

DOCS = {
    "d0": "read the config file and return its sections",
    "d1": "def get_value(key): return the value stored under key",
    "d2": "open a socket and send bytes to the server",
    "d3": "sort the list of numbers in place and return nothing",
    "d4": "return the number of items in the queue queue queue",
    "d5": "zebra",
}
QUERIES = {"q0": "read config file", "q1": "value of a key", "q2": "send bytes over a socket",
           "q3": "number of items in a queue", "q4": "unknownword"}
QRELS = {"test": {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d4": 1},
                  "q4": {"d5": 1}}}


def data() -> RetrievalData:
    return RetrievalData("lex", {d: {"title": "", "text": t} for d, t in DOCS.items()},
                         dict(QUERIES), QRELS)


def lucene_bm25(query: str, k1: float = 1.5, b: float = 0.75) -> dict[str, float]:
    """Brute-force Lucene BM25 (Lù 2024, table 1; Lucene drops the rank-neutral ``k1 + 1``
    factor) with the model's tokenisation."""
    tok = {d: re.findall(r"[^\W_]+", t.lower()) for d, t in DOCS.items()}
    avgdl = sum(map(len, tok.values())) / len(tok)
    df = Counter(w for words in tok.values() for w in set(words))
    out = {}
    for d, words in tok.items():
        tf = Counter(words)
        score = 0.0
        for w in set(re.findall(r"[^\W_]+", query.lower())):
            if tf[w]:
                idf = math.log(1 + (len(tok) - df[w] + 0.5) / (df[w] + 0.5))
                score += idf * tf[w] / (tf[w] + k1 * (1 - b + b * len(words) / avgdl))
        if score > 0:
            out[d] = score
    return out


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (0.9, 0.4)])
def test_scores_equal_brute_force_lucene(k1: float, b: float) -> None:
    run = BM25Model(k1=k1, b=b).retrieve(data(), list(QUERIES), list(DOCS), k=10)
    for q, text in QUERIES.items():
        want = lucene_bm25(text, k1, b)
        assert set(run[q]) == set(want), q  # zero-score documents are not retrieved
        for d, s in want.items():
            assert run[q][d] == pytest.approx(s, rel=1e-5)
    assert run["q4"] == {}
    assert max(run["q1"], key=run["q1"].get) == "d1"  # "value" matches get_value


def test_depth_k_keeps_the_best() -> None:
    run = BM25Model().retrieve(data(), ["q3"], list(DOCS), k=1)
    assert list(run["q3"]) == ["d4"]


def test_evaluate_matches_scoring_its_run() -> None:
    ev = RetrievalEvaluator(data(), "test", k=10)
    model = BM25Model()
    metrics = model.evaluate(ev, "test")
    mean, per_query = evaluate_run(ev.qrels, model.run)
    assert metrics == {f"test/lex/{m}": v for m, v in mean.items()}
    assert model.per_query == per_query and per_query["q4"]["ndcg@10"] == 0.0
    assert per_query["q0"]["mrr@10"] == 1.0 and per_query["q2"]["mrr@10"] == 1.0


def test_stopwords_change_tokens() -> None:
    plain = BM25Model().retrieve(data(), ["q1"], list(DOCS), k=10)["q1"]
    english = BM25Model(stopwords="english").retrieve(data(), ["q1"], list(DOCS), k=10)["q1"]
    assert "d3" in plain and "d3" not in english  # "of" only


def test_invalid_choices() -> None:
    with pytest.raises(ConfigError, match="lucene, robertson"):
        BM25Model(method="okapi")
    with pytest.raises(ConfigError, match="bm25.b"):
        BM25Model(b=2.0)
