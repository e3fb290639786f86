"""Shared fixtures: a tiny random encoder and a tiny synthetic retrieval dataset (offline)."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = {
    "sort": ["sort a list of numbers", "order items by key", "sorted output in place"],
    "file": ["read a file from disk", "open the path and write bytes", "close the file handle"],
    "net": ["open a socket connection", "send bytes over the network", "parse an http header"],
    "time": ["format a date as text", "parse a timestamp string", "convert time zones"],
}


def make_data(n_per_topic: int = 6):
    """A small RetrievalData: 4 topics x n queries; each query has one positive document."""
    from hnm.data.dataset import RetrievalData

    corpus, queries, train, test = {}, {}, {}, {}
    for t, (topic, phrases) in enumerate(TOPICS.items()):
        for i in range(n_per_topic):
            qid, did = f"q{t}_{i}", f"d{t}_{i}"
            phrase = phrases[i % len(phrases)]
            queries[qid] = f"how to {phrase} number {i}"
            corpus[did] = {"title": f"{topic}.f{i}", "text": f"def f{i}(): {phrase} {i} {topic}"}
            (test if i % 3 == 0 else train)[qid] = {did: 1}
    return RetrievalData("toy", corpus, queries, {"train": train, "test": test})


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """``hnm.cli.main`` run in-process lets Hydra point the root logger at this test's captured
    streams; the next test would log into closed ones ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture()
def toy_data():
    return make_data()


@pytest.fixture(scope="session")
def tiny_model():
    from hnm.encoders import tiny_encoder

    return tiny_encoder(seed=0)
