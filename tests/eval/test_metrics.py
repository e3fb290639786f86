"""pytrec_eval-backed metrics against plain-Python reference implementations."""

from __future__ import annotations

import math
import random

import pytest

from hnm.eval import cut_run, evaluate_run, metric_names


def ranked(docs: dict[str, float]) -> list[str]:
    return [d for d, _ in sorted(docs.items(), key=lambda x: (x[1], x[0]), reverse=True)]


def ref_ndcg(rels: dict[str, int], docs: dict[str, float], k: int) -> float:
    dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranked(docs)[:k]))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def ref_mrr(rels: dict[str, int], docs: dict[str, float], k: int) -> float:
    for i, d in enumerate(ranked(docs)[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def ref_recall(rels: dict[str, int], docs: dict[str, float], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked(docs)[:k])) / len(relevant) if relevant else 0.0


def ref_map(rels: dict[str, int], docs: dict[str, float], k: int) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    hits, total = 0, 0.0
    for i, d in enumerate(ranked(docs)[:k]):
        if d in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant) if relevant else 0.0


def random_case(seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 6))}
        if q % 7 == 3:
            continue  # judged but never retrieved: must count as 0
        # coarse scores make ties, which every metric must resolve the way trec_eval does
        run[qid] = {d: round(rng.random(), 1) for d in rng.sample(docs, rng.randint(0, 40))}
    run["unjudged"] = {"d1": 1.0}
    return qrels, run


@pytest.mark.parametrize("seed", range(5))
def test_matches_reference(seed: int) -> None:
    qrels, run = random_case(seed)
    mean, per_query = evaluate_run(qrels, run, ndcg_at=(3, 10), recall_at=(5, 100),
                                   mrr_at=(1, 10), map_at=(100,))
    assert set(per_query) == set(qrels)
    refs = {"ndcg": ref_ndcg, "mrr": ref_mrr, "recall": ref_recall, "map": ref_map}
    for q in qrels:
        for name in metric_names((3, 10), (5, 100), (1, 10), (100,)):
            metric, k = name.split("@")
            want = refs[metric](qrels[q], run.get(q, {}), int(k))
            assert per_query[q][name] == pytest.approx(want, abs=1e-9), (q, name)
    for name, value in mean.items():
        assert value == pytest.approx(sum(r[name] for r in per_query.values()) / len(qrels))


def test_default_metric_names_and_missing_queries() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 2}}
    mean, per_query = evaluate_run(qrels, {"a": {"x": 1.0, "z": 0.5}})
    assert list(mean) == ["ndcg@10", "recall@100", "mrr@10", "map@100"]
    assert per_query["a"] == {"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0, "map@100": 1.0}
    assert all(v == 0.0 for v in per_query["b"].values())
    assert mean == pytest.approx(dict.fromkeys(mean, 0.5))


def test_mrr_cut() -> None:
    qrels = {"q": {"d11": 1}}
    run = {"q": {f"d{i:02d}": 1.0 - i / 100 for i in range(20)}}  # d11 at rank 12
    mean, _ = evaluate_run(qrels, run, mrr_at=(10, 20))
    assert mean["mrr@10"] == 0.0 and mean["mrr@20"] == pytest.approx(1 / 12)
    assert list(cut_run(run, 2)["q"]) == ["d00", "d01"]


def test_empty_qrels_rejected() -> None:
    with pytest.raises(ValueError):
        evaluate_run({}, {})
