"""RetrievalEvaluator on a synthetic dataset whose perfect ranking is known by construction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from hnm.data import RetrievalData
from hnm.errors import ConfigError, DataError
from hnm.eval import RetrievalEvaluator

N = 30


def make_data() -> RetrievalData:
    corpus = {f"d{i}": {"title": f"t{i}", "text": f"topic {i}"} for i in range(N)}
    queries = {f"q{i}": f"about {i}" for i in range(N)}
    qrels = {"test": {f"q{i}": {f"d{i}": 1} for i in range(N)},
             "train": {"q0": {"d0": 1}}}
    return RetrievalData("synthetic", corpus, queries, qrels)


def one_hot(mapping: dict[int, int] | None = None):
    """Embed a text onto the one-hot axis of the number it ends with (optionally remapped)."""
    calls: list[int] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        out = np.zeros((len(texts), N), dtype=np.float32)
        for row, text in enumerate(texts):
            i = int(text.rsplit(" ", 1)[-1])
            out[row, (mapping or {}).get(i, i)] = 1.0
        return out

    embed.calls = calls  # type: ignore[attr-defined]
    return embed


def test_perfect_ranking_scores_one() -> None:
    data = make_data()
    evaluator = RetrievalEvaluator(data, split="test", k=100, batch_size=7)
    docs = one_hot()
    out = evaluator(one_hot(), docs, prefix="zero_shot")
    assert set(out) == {f"zero_shot/synthetic/{m}" for m in
                        ("ndcg@10", "recall@100", "mrr@10", "map@100")}
    assert all(v == pytest.approx(1.0) for v in out.values())
    assert max(docs.calls) <= 7 and sum(docs.calls) == N  # type: ignore[attr-defined]
    assert evaluator.per_query["q3"]["ndcg@10"] == pytest.approx(1.0)
    top = max(evaluator.run["q3"], key=evaluator.run["q3"].get)
    assert top == "d3" and len(evaluator.run["q3"]) == N  # k clamped to the corpus
    assert set(evaluator.timings) == {"embed_queries", "embed_corpus", "search", "metrics"}


def test_shuffled_queries_score_lower() -> None:
    data = make_data()
    rng = np.random.default_rng(0)
    perm = {i: int(p) for i, p in enumerate(rng.permutation(N))}
    evaluator = RetrievalEvaluator(data, k=10, backend="torch")
    out = evaluator(one_hot(perm), one_hot(), "test")
    assert out["test/synthetic/ndcg@10"] < 0.5 and out["test/synthetic/mrr@10"] < 0.5
    for i in range(N):  # query i now points at document perm[i]
        assert max(evaluator.run[f"q{i}"], key=evaluator.run[f"q{i}"].get) == f"d{perm[i]}"
        assert (evaluator.per_query[f"q{i}"]["mrr@10"] == 1.0) == (perm[i] == i)


def test_max_queries_subset_is_deterministic() -> None:
    data = make_data()
    a = RetrievalEvaluator(data, max_queries=5, seed=1)
    b = RetrievalEvaluator(data, max_queries=5, seed=1)
    c = RetrievalEvaluator(data, max_queries=5, seed=2)
    assert a.qids == b.qids != c.qids and len(a.qids) == 5
    queries = one_hot()
    a(queries, one_hot(), "test")
    assert sum(queries.calls) == 5  # type: ignore[attr-defined]
    assert set(a.per_query) == set(a.qids)


def test_bad_arguments() -> None:
    with pytest.raises(DataError, match="no 'dev' split"):
        RetrievalEvaluator(make_data(), split="dev")
    with pytest.raises(ConfigError):
        RetrievalEvaluator(make_data(), k=0)
