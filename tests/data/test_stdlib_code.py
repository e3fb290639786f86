"""The embedded stdlib_code dataset: rules, split and cache."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hnm.data import stdlib_code
from hnm.data.stdlib_code import first_sentence, load_stdlib_code


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hnm-cache")


@pytest.fixture(scope="module")
def data(cache_dir: Path):
    return load_stdlib_code(cache_dir=str(cache_dir))


def _pairs(data):
    return [(q, d) for split in data.qrels.values() for q, docs in split.items() for d in docs]


SPLITS = ("train", "dev", "test")


def _top(qid: str) -> str:
    return qid.removeprefix("q:").split(".")[0]


def test_counts_are_plausible(data) -> None:
    assert sorted(data.qrels) == sorted(SPLITS)
    n = {s: len(data.qrels[s]) for s in SPLITS}
    total = sum(n.values())
    assert data.name == "stdlib_code"
    assert 3000 <= total <= 5000
    assert 0.12 <= n["test"] / total <= 0.3
    assert 0.08 <= n["dev"] / total <= 0.2  # 486 of 3,886 (12.5%) on Python 3.11.7
    assert n["train"] > n["dev"] + n["test"]
    assert len(data.corpus) >= total
    assert set(data.queries) == set().union(*(data.qrels[s] for s in SPLITS))


def test_queries_are_long_enough_and_unique(data) -> None:
    texts = list(data.queries.values())
    assert all(len(t.split()) >= 5 for t in texts)
    assert all(t == " ".join(t.split()) for t in texts)
    assert len({t.casefold() for t in texts}) == len(texts)


def test_documents_do_not_contain_their_docstring(data) -> None:
    for qid, doc_id in _pairs(data):
        assert data.queries[qid] not in data.corpus[doc_id]["text"], doc_id


def test_no_test_code(data) -> None:
    for doc_id in data.corpus:
        parts = doc_id.split("#")[0].split(".")
        assert not any(p.startswith("test") or p.endswith("_test") for p in parts[:-1]), doc_id


def test_split_is_by_top_level_module(data) -> None:
    tops = {s: {d.split(".")[0] for q in data.qrels[s] for d in data.qrels[s][q]}
            for s in SPLITS}
    assert all(tops.values())
    assert not tops["train"] & tops["test"]
    assert not tops["dev"] & tops["test"]
    assert not tops["dev"] & tops["train"]
    assert len(tops["dev"]) >= 10  # several packages, not one large one


def test_test_split_rule_is_unchanged(data) -> None:
    """The test split is what it was before ``dev`` existed: md5(top) % 100 < 30; dev and
    train share the remaining modules, so published test figures stay comparable."""
    def old_rule(top: str) -> bool:
        return int(hashlib.md5(top.encode()).hexdigest(), 16) % 100 < 30

    assert stdlib_code.TEST_BUCKETS == 30
    for split in SPLITS:
        assert all(old_rule(_top(q)) == (split == "test") for q in data.qrels[split]), split
    assert {_top(q) for q in data.qrels["test"]} >= {"collections", "json"}


def test_dev_rule_is_deterministic() -> None:
    """A module's split depends on its name only: not on the process (str hash seed)."""
    names = ["asyncio", "collections", "email", "idlelib", "json", "turtle", "pydoc", "xml"]
    here = [stdlib_code.module_split(n) for n in names]
    code = f"from hnm.data.stdlib_code import module_split; print([module_split(n) for n in {names!r}])"
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert out.stdout.strip() == repr(here)
    assert here == ["train", "test", "train", "train", "test", "dev", "dev", "dev"]


def test_cache_is_reused(cache_dir: Path, data) -> None:
    start = time.perf_counter()
    again = load_stdlib_code(cache_dir=str(cache_dir))
    assert time.perf_counter() - start < 2.0
    assert again == data


def test_cache_with_other_python_version_is_rebuilt(cache_dir: Path, data, monkeypatch) -> None:
    (path,) = cache_dir.glob("stdlib_code-*.json.gz")
    assert ".".join(map(str, sys.version_info[:3])) in path.name
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        blob = json.load(fh)
    blob["python"] = "2.7.18"
    blob["queries"] = {}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(blob, fh)
    calls = []
    real = stdlib_code.build_stdlib_code
    monkeypatch.setattr(stdlib_code, "build_stdlib_code", lambda *a: calls.append(a) or real(*a))
    rebuilt = load_stdlib_code(cache_dir=str(cache_dir))
    assert calls and rebuilt == data
    assert list(rebuilt.corpus) == list(data.corpus)  # deterministic order
    assert list(rebuilt.queries) == list(data.queries)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        assert json.load(fh)["python"] == ".".join(map(str, sys.version_info[:3]))


def test_first_sentence() -> None:
    assert first_sentence("Return the sum.  More text.") == "Return the sum."
    assert first_sentence("Split a\n   path into parts\n\nDetails.") == "Split a path into parts"
    assert first_sentence("Parse e.g. a path. Then stop.") == "Parse e.g. a path."


def test_small_tree(tmp_path: Path) -> None:
    """Rules on a planted tree: methods, trivial bodies, duplicates, test folders."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "site-packages").mkdir()
    body = "    x = 1\n    return x + 1\n"
    (tmp_path / "pkg" / "__init__.py").write_text(
        "class A:\n"
        "    @staticmethod\n"
        "    def run(a):\n        '''Run the whole thing on a.\n\n        More.'''\n"
        "        y = a\n        return y\n"
        "def stub():\n    '''A stub that does nothing at all.'''\n    raise NotImplementedError\n"
        f"def same1():\n    '''The same query text appears twice.'''\n{body}"
        f"def same2():\n    '''the same query text appears twice.'''\n{body}"
        f"def nodoc():\n{body}"
    )
    (tmp_path / "tests" / "mod.py").write_text(f"def t():\n    '''Tests are never read here.'''\n{body}")
    (tmp_path / "site-packages" / "m.py").write_text(f"def s():\n{body}")
    (tmp_path / "bad.py").write_text("def broken(:\n")
    data = stdlib_code.build_stdlib_code(root=str(tmp_path))
    assert sorted(data.corpus) == ["pkg.A.run", "pkg.nodoc", "pkg.same1", "pkg.same2"]
    assert data.queries == {"q:pkg.A.run": "Run the whole thing on a."}
    assert data.corpus["pkg.A.run"]["text"] == (
        "@staticmethod\ndef run(a):\n    y = a\n    return y\n")
    assert data.corpus["pkg.A.run"]["title"] == "pkg.A.run"
