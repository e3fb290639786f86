"""``eval.rerank_top_k``: a cross-encoder re-ranks each query's dense top K."""

from __future__ import annotations

from pathlib import Path

import pytest

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError
from hnm.eval.metrics import evaluate_run
from hnm.eval.rerank import load_ranker, rerank_run
from hnm.miners.ranker import CrossEncoderRanker
from tests.beir_fixture import write_beir
from tests.eval.test_eval_cmd import run_eval


class Oracle:
    """Scores 1 for the judged document of the query, 0 otherwise."""

    def __init__(self, data: RetrievalData) -> None:
        self.rel = {(data.queries[q], data.doc_text(d)) for q, docs in
                    data.qrels["test"].items() for d in docs}

    def predict(self, pairs, **_):
        return [float(p in self.rel) for p in pairs]


def toy() -> tuple[RetrievalData, dict[str, dict[str, float]]]:
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(6)}
    queries = {"q0": "a", "q1": "b"}
    data = RetrievalData("toy", corpus, queries, {"test": {"q0": {"d2": 1}, "q1": {"d5": 1}}})
    run = {"q0": {f"d{i}": 1.0 - 0.1 * i for i in range(6)},
           "q1": {f"d{i}": 1.0 - 0.1 * i for i in range(6)}}
    return data, run


def test_the_top_k_is_reordered_by_the_ranker_and_the_rest_kept() -> None:
    data, run = toy()
    out, _ = rerank_run(run, data, Oracle(data), k=3)
    assert max(out["q0"], key=out["q0"].get) == "d2"  # inside the top 3: moved to the top
    assert min(out["q0"][d] for d in ("d0", "d1", "d2")) > max(
        out["q0"][d] for d in ("d3", "d4", "d5"))
    assert sorted(("d3", "d4", "d5"), key=lambda d: -out["q1"][d]) == ["d3", "d4", "d5"]
    before, _ = evaluate_run(data.qrels["test"], run)
    after, _ = evaluate_run(data.qrels["test"], out)
    assert after["mrr@10"] > before["mrr@10"]
    assert out["q1"]["d5"] == run["q1"]["d5"]  # outside the top 3: not re-ranked


def test_hnm_eval_reranks_with_a_saved_ranker(tmp_path: Path, tiny_model) -> None:
    folder = write_beir(tmp_path / "toy")
    tiny_model.save(str(tmp_path / "model"))
    CrossEncoderRanker.from_encoder(tiny_model, max_length=64).save(tmp_path / "ranker")
    assert load_ranker(tmp_path / "ranker").predict([("a", "b")]).shape == (1,)
    metrics, _ = run_eval(tmp_path, f"model={tmp_path / 'model'}", f"eval.datasets=[{folder}]",
                          "device=cpu", "eval.rerank_top_k=5",
                          f"eval.ranker={tmp_path / 'ranker'}")
    names = {k.split("/")[0] for k in metrics}
    assert {"test", "test_dense"} <= names
    assert any(k.endswith("rerank_s") for k in metrics)
    (tmp_path / "again").mkdir()
    with pytest.raises(ConfigError, match="needs a ranker"):
        run_eval(tmp_path / "again", f"model={tmp_path / 'model'}", f"eval.datasets=[{folder}]",
                 "device=cpu", "eval.rerank_top_k=5")
