"""Texts are cut to a bound in characters before tokenizing (:mod:`hnm.encoders.clip`): the
tokens of ordinary texts never change, and a huge text costs what a normal one does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from hnm.encoders import clip
from hnm.encoders.clip import char_limit, clip_for, clip_texts


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from hnm.encoders.factory import minilm_path

    return AutoTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def stdlib_texts(tmp_path_factory) -> list[str]:
    import os

    from hnm.data.stdlib_code import load_stdlib_code

    cache = os.environ.get("HNM_CACHE_DIR") or str(tmp_path_factory.mktemp("cache"))
    data = load_stdlib_code(cache_dir=cache, corpus="all")
    return [data.doc_text(d) for d in data.corpus] + list(data.queries.values())


@pytest.mark.slow
@pytest.mark.parametrize("max_length", [64, 128, 256, 512])
def test_stdlib_code_tokens_are_unchanged_at_a_32nd_of_the_bound(
        tokenizer, stdlib_texts, monkeypatch, max_length: int) -> None:
    """With the bound cut to 8 characters a token (32 times tighter than hnm's), every text
    of the stdlib set still tokenizes to the same ids: hnm's bound changes none."""
    monkeypatch.setattr(clip, "CHARS_PER_TOKEN", 8)
    monkeypatch.setattr(clip, "MIN_CHARS", 0)
    clipped = clip_texts(stdlib_texts, max_length)
    assert sum(a != b for a, b in zip(clipped, stdlib_texts)) > 50  # the test cuts texts
    kw = {"truncation": True, "max_length": max_length}
    assert tokenizer(clipped, **kw)["input_ids"] == tokenizer(stdlib_texts, **kw)["input_ids"]


def test_the_bound(tokenizer) -> None:
    assert char_limit(128) == 256 * 128 and char_limit(1) == clip.MIN_CHARS
    assert char_limit(None) is None and char_limit(True) is None
    text = "word " * 20_000  # 100,000 characters, far past 128 tokens
    (cut,) = clip_texts([text], 128)
    assert len(cut) == char_limit(128) and text.startswith(cut)
    (left,) = clip_texts([text + "END"], 128, left=True)
    assert left.endswith("END") and len(left) == char_limit(128)
    pair = clip_texts([("a query", text)], 128)[0]
    assert pair[0] == "a query" and len(pair[1]) == char_limit(128)
    kw = {"truncation": True, "max_length": 128}
    assert tokenizer(cut, **kw)["input_ids"] == tokenizer(text, **kw)["input_ids"]
    assert clip_texts(["short", 3], 128) == ["short", 3]


def test_a_huge_text_costs_what_a_normal_one_does(tiny_model) -> None:
    from hnm.encoders import embed_fn

    huge = "def f(): return 1\n" * 3_000_000  # 54 MB
    fn = embed_fn(tiny_model, 8, progress=False)
    t0 = time.perf_counter()
    emb = fn([huge, "a normal text"])
    assert time.perf_counter() - t0 < 10  # uncut: a minute and gigabytes
    cut = huge[:char_limit(tiny_model.max_seq_length)]
    np.testing.assert_array_equal(emb[0], fn([cut])[0])
    assert clip_for(tiny_model, [huge])[0] == cut


def test_beir_refuses_a_line_above_the_limit(tmp_path: Path, monkeypatch) -> None:
    from hnm.data import beir
    from hnm.errors import DataError
    from tests.beir_fixture import write_beir

    folder = write_beir(tmp_path / "toy")
    with open(folder / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"_id": "big", "text": "x" * 5000}) + "\n")
    n = len((folder / "corpus.jsonl").read_text().splitlines())
    assert "big" in beir.load_beir(str(folder)).corpus
    monkeypatch.setattr(beir, "MAX_LINE_BYTES", 4096)
    with pytest.raises(DataError, match=rf"corpus.jsonl line {n}: longer than"):
        beir.load_beir(str(folder))
