"""``hnm eval``: model and dataset specs, run-folder settings, the MTEB adapter (with a stand-in
task), outputs, and (slow) exact reproduction of a trained run's test metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hnm.cli import config_dir
from hnm.errors import ConfigError, DataError, HnmError
from hnm.eval import RetrievalEvaluator, read_per_query, read_trec_run
from hnm.eval.targets import parse_datasets, parse_model, with_run_settings
from tests.beir_fixture import write_beir
from tests.conftest import make_data

CONF = config_dir()


def eval_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("eval_cmd", overrides=list(overrides))


def run_eval(tmp: Path, *overrides: str) -> tuple[dict, Path]:
    from hnm.commands.eval import evaluate

    out = tmp / "out"
    out.mkdir(exist_ok=True)
    cwd = Path.cwd()
    os.chdir(out)  # outside Hydra the output folder is the working directory
    try:
        return evaluate(eval_cfg(*overrides)), out
    finally:
        os.chdir(cwd)


def test_parse_model(tmp_path: Path) -> None:
    assert parse_model(None).kind == "encoder" and parse_model("BM25").kind == "bm25"
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("data: {name: x}\neval: {batch_size: 8}\nseed: 3\n")
    spec = parse_model(str(run))
    assert spec.kind == "run" and spec.model_dir == str(run / "model")
    assert spec.run_config is not None and spec.run_config.seed == 3
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "modules.json").write_text("[]")
    assert parse_model(str(saved)).kind == "saved"
    assert parse_model("sentence-transformers/all-MiniLM-L6-v2").kind == "hub"
    with pytest.raises(DataError, match="no such folder"):
        parse_model(str(tmp_path / "missing"))
    (run / "model").rmdir()
    with pytest.raises(DataError, match="did not finish"):
        parse_model(str(run))


def test_parse_datasets(tmp_path: Path) -> None:
    base = eval_cfg().data
    assert [s.data.name for s in parse_datasets(None, base, CONF)] == ["stdlib_code"]
    folder = write_beir(tmp_path / "toy")
    specs = parse_datasets(f"stdlib_code, beir:{folder},hf:org/set,mteb:MIRACL/de", base, CONF)
    assert specs[0].data is base
    assert specs[1].data.path == str(folder) and specs[1].keep_name
    assert specs[2].data.name == "org/set" and not specs[2].keep_name
    assert (specs[3].task, specs[3].subset) == ("MIRACL", "de")
    assert parse_datasets([str(folder)], base, CONF)[0].data.path == str(folder)
    with pytest.raises(ConfigError, match="beir:PATH.*stdlib_code"):
        parse_datasets(["nope"], base, CONF)


def test_run_settings_then_user_overrides() -> None:
    cfg = eval_cfg("eval.evaluator.k=7")
    run = OmegaConf.create({"seed": 5, "data": {"name": "toy", "eval_split": "dev"},
                            "eval": {"batch_size": 16, "evaluator": {"k": 50, "max_queries": 9}}})
    merged = with_run_settings(cfg, run, ["eval.evaluator.k=7", "hydra.run.dir=x"])
    assert merged.seed == 5 and merged.data.name == "toy" and merged.data.eval_split == "dev"
    assert merged.eval.evaluator.k == 7 and merged.eval.evaluator.max_queries == 9
    assert merged.eval.batch_size == 16 and "datasets" in merged.eval
    chosen = with_run_settings(eval_cfg("data=beir", "data.path=/d"), run, ["data=beir",
                                                                             "data.path=/d"])
    assert chosen.data.path == "/d"


def test_run_settings_keep_the_runs_inference_backend() -> None:
    """A run evaluated in bf16 is re-evaluated in bf16 (its metrics reproduced), unless the
    user names a backend."""
    run = OmegaConf.create({"seed": 5, "data": {"name": "toy"}, "eval": {},
                            "encoder": {"inference": "bf16"}})
    assert with_run_settings(eval_cfg(), run, []).encoder.inference == "bf16"
    mine = with_run_settings(eval_cfg("encoder.inference=torch"), run,
                             ["encoder.inference=torch"])
    assert mine.encoder.inference == "torch"
    old = OmegaConf.create({"seed": 5, "data": {"name": "toy"}, "eval": {}})  # no such key
    assert with_run_settings(eval_cfg(), old, []).encoder.inference == \
        eval_cfg().encoder.inference


class FakeTask:
    """Stands in for an mteb task: metadata, subsets, and data loading."""

    def __init__(self, fail: bool = False, ignore: bool = False) -> None:
        self.metadata = SimpleNamespace(type="Retrieval", modalities=["text"],
                                        eval_splits=["test"],
                                        dataset={"path": "mteb/fake", "revision": "abc123"})
        self.hf_subsets, self.ignore_identical_ids, self.fail = ["default"], ignore, fail
        self.ignore = ignore

    def load_data(self) -> None:
        if self.fail:
            raise ConnectionError("Couldn't reach 'mteb/fake' on the Hub (OfflineModeIsEnabled)")
        import datasets

        toy = make_data()
        corpus = datasets.Dataset.from_dict({"id": list(toy.corpus), "title": [
            d["title"] for d in toy.corpus.values()], "text": [d["text"] for d in
                                                               toy.corpus.values()]})
        queries = datasets.Dataset.from_dict({"id": list(toy.queries),
                                              "text": list(toy.queries.values())})
        qrels = {q: dict(d) for q, d in toy.qrels["test"].items()}
        if self.ignore:  # a query that is also a document, judged relevant to itself
            qrels["q0_0"]["q0_0"] = 1
            corpus = corpus.add_item({"id": "q0_0", "title": "", "text": toy.queries["q0_0"]})
        self.dataset = {"default": {"test": {"corpus": corpus, "queries": queries,
                                             "relevant_docs": qrels}}}


def test_mteb_adapter_converts_and_reports_missing(monkeypatch) -> None:
    from hnm.eval import mteb_adapter

    monkeypatch.setattr(mteb_adapter, "_get_task", lambda name: FakeTask())
    data, split, ignore = mteb_adapter.load_mteb_task("Fake")
    toy = make_data()
    assert (data.name, split, ignore) == ("Fake", "test", False)
    assert data.corpus == toy.corpus and data.queries == toy.queries
    assert data.qrels == {"test": toy.qrels["test"]}
    with pytest.raises(ConfigError, match="no evaluation split 'dev'"):
        mteb_adapter.load_mteb_task("Fake", split="dev")
    monkeypatch.setattr(mteb_adapter, "_get_task", lambda name: FakeTask(fail=True))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"'mteb/fake' \(revision abc123\).*HF_HUB_OFFLINE=0"):
        mteb_adapter.load_mteb_task("Fake")


def test_mteb_missing_package(monkeypatch) -> None:
    from hnm.eval import mteb_adapter

    monkeypatch.setitem(sys.modules, "mteb", None)
    with pytest.raises(ConfigError, match=r"pip install 'hnm\[mteb\]'"):
        mteb_adapter.load_mteb_task("SciFact")


def test_bm25_on_two_datasets_writes_outputs(tmp_path: Path, monkeypatch) -> None:
    from hnm.eval import mteb_adapter

    monkeypatch.setattr(mteb_adapter, "_get_task",
                        lambda name: FakeTask(fail=name == "Gone", ignore=name == "Self"))
    folder = write_beir(tmp_path / "toy")
    specs = f"[beir:{folder},mteb:Self,mteb:Gone]"
    with pytest.raises(DataError, match=r"1 of 3 datasets.*\[mteb:Gone\].*mteb/fake"):
        run_eval(tmp_path, "model=bm25", f"eval.datasets={specs}")
    metrics, out = run_eval(tmp_path, "model=bm25", f"eval.datasets={specs}",
                            "eval.skip_missing=true")
    assert {k.split("/")[1] for k in metrics if k.startswith("test/")} == {"toy", "Self"}
    for name in ("toy", "Self"):
        per_query = read_per_query(out / f"test_{name}_per_query.jsonl")
        mean = sum(r["ndcg@10"] for r in per_query.values()) / len(per_query)
        assert mean == pytest.approx(metrics[f"test/{name}/ndcg@10"])
        run = read_trec_run(out / f"test_{name}_run.trec")
        assert set(run) == set(per_query)
    self_run = read_trec_run(out / "test_Self_run.trec")
    assert "q0_0" not in self_run["q0_0"] and "q0_0" in self_run["q3_0"]  # own id ignored
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert OmegaConf.load(out / "config.yaml").skipped_datasets == ["mteb:Gone"]
    with pytest.raises(HnmError, match="never overwrites"):
        run_eval(tmp_path, "model=bm25", f"eval.datasets=[beir:{folder}]")


def test_saved_model_equals_direct_evaluation(tmp_path: Path, tiny_model) -> None:
    from hnm.encoders import embed_fn

    folder = write_beir(tmp_path / "toy")
    tiny_model.save(str(tmp_path / "model"))
    metrics, _ = run_eval(tmp_path, f"model={tmp_path / 'model'}", f"eval.datasets=[{folder}]",
                          "device=cpu")
    from hnm.data.beir import load_beir

    ev = RetrievalEvaluator(load_beir(str(folder)), "test", k=100)
    embed = embed_fn(tiny_model, 64)
    want = ev(embed, embed, "test")
    assert {k: v for k, v in metrics.items() if k.startswith("test/")} == want


HNM = [sys.executable, "-m", "hnm.cli"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*HNM, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_eval_reproduces_a_trained_run_and_bm25(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _cli(["train", "experiment=smoke", "logger=none", f"hydra.run.dir={run}"], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    again = _cli(["eval", f"model={run}", f"hydra.run.dir={tmp_path / 'ev'}"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    test_keys = sorted(k for k in trained if k.startswith("test/"))
    assert len(test_keys) == 4
    assert {k: evaluated.get(k) for k in test_keys} == {k: trained[k] for k in test_keys}
    bm25 = _cli(["eval", "model=bm25", f"hydra.run.dir={tmp_path / 'bm25'}"], tmp_path)
    assert bm25.returncode == 0, bm25.stderr[-3000:]
    ndcg = json.loads((tmp_path / "bm25" / "metrics.json").read_text())[
        "test/stdlib_code/ndcg@10"]
    assert 0.42 < ndcg < 0.48


@pytest.mark.slow
def test_real_mteb_offline_names_missing_data(monkeypatch) -> None:
    pytest.importorskip("mteb")
    from hnm.eval.mteb_adapter import load_mteb_task

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"'mteb/scifact' \(revision [0-9a-f]{40}\)"):
        load_mteb_task("SciFact")
    with pytest.raises(ConfigError, match="not an MTEB task"):
        load_mteb_task("NoSuchTask")
    with pytest.raises(ConfigError, match="Classification task"):
        load_mteb_task("Banking77Classification")


@pytest.mark.parametrize("spelling", ["experiment=smoke", "+experiment=smoke"])
def test_eval_takes_an_experiment_as_train_and_mine_do(spelling: str) -> None:
    """``hnm eval experiment=smoke`` (as ``hnm train`` / ``hnm mine`` take it) and the
    ``+experiment=`` spelling both compose to the smoke settings."""
    from hnm.catalog import canonical_overrides
    from hnm.cli import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("eval_cmd", overrides=canonical_overrides("eval", [spelling, "model=null"]))
    assert cfg.encoder._target_.endswith("tiny_encoder") and cfg.eval.evaluator.max_queries == 200
