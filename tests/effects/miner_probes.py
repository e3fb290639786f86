"""What the miners' effect tests compare the recorded steps with: each query's top-ranked
non-positive documents under a given encoder, computed by a plain loop, independently of the
miners' index and filters."""

from __future__ import annotations

import copy
import re
from typing import Any

from hnm.encoders.embed import embed_fn
from tests.effects.harness import Step, compose_cfg, planted_data

K = 5  # the miners' default num_negatives


def negatives(step: Step) -> list[list[str]]:
    """The explicit negatives of each pair of a step (``doc_ids`` is positives, then B×k)."""
    b, k = step.batch_size, step.num_negatives
    flat = step.doc_ids[b:]
    return [flat[i * k:(i + 1) * k] for i in range(b)]


def words(text: str) -> set[str]:
    return set(re.findall(r"\w\w+", text.lower()))


class Ranker:
    """Top-ranked non-positive documents of every training query under an encoder pair.

    ``top(qid, n)`` is ``None`` where the n-th and (n+1)-th scores are closer than ``tie`` (the
    order there is decided by float noise, not by the encoder)."""

    def __init__(self, run: Any, q_model: Any, d_model: Any | None = None,
                 tie: float = 1e-5) -> None:
        data, pairs = run.pairs.data, run.pairs
        self.doc_ids = list(data.corpus)
        self.qids = list(dict.fromkeys(pairs.qids))
        self.positives = pairs.positives
        fq = embed_fn(q_model, 64, progress=False)
        fd = fq if d_model is None else embed_fn(d_model, 64, progress=False)
        q = fq([data.queries[x] for x in self.qids])
        self.d = fd([data.doc_text(x) for x in self.doc_ids])
        self.scores = dict(zip(self.qids, q @ self.d.T))
        self.tie = tie

    def ranking(self, qid: str) -> list[tuple[str, float]]:
        s = self.scores[qid]
        order = sorted(range(len(self.doc_ids)), key=lambda j: (-s[j], j))
        return [(self.doc_ids[j], float(s[j])) for j in order
                if self.doc_ids[j] not in self.positives[qid]]

    def top(self, qid: str, n: int = K) -> set[str] | None:
        r = self.ranking(qid)
        if n < len(r) and r[n - 1][1] - r[n][1] < self.tie:
            return None
        return {d for d, _ in r[:n]}

    def score(self, qid: str, doc: str) -> float:
        return float(self.scores[qid][self.doc_ids.index(doc)])


def rank_every_step(q_of: Any = None, d_of: Any = None):
    """A probe: the :class:`Ranker` of the encoders in force at this step (``q_of(run)`` /
    ``d_of(run)``; default the module's encoder), plus a frozen copy of the starting one."""
    start: dict[str, Any] = {}

    def probe(run: Any) -> dict[str, Any]:
        m = run.module
        q_model = m.encoder if q_of is None else q_of(run)
        d_model = None if d_of is None else d_of(run)
        if not start:
            start["model"] = copy.deepcopy(q_model)
        return {"now": Ranker(run, q_model, d_model), "start_model": start["model"]}

    return probe


def keep_start():
    """A probe keeping a frozen copy of the encoder as it was at the first step (the starting
    model: the probe runs before that step's optimizer update)."""
    start: dict[str, Any] = {}

    def probe(run: Any) -> Any:
        if not start:
            start["model"] = copy.deepcopy(run.module.encoder)
        return start["model"]

    return probe


def build_only(tmp_path: Any, overrides: list[str], prepare: bool = False) -> Any:
    """``hnm.train.build`` on the planted data (the checks that run before any encoding), and
    ``prepare`` (the first mining) when asked; no training."""
    import os

    from hnm import train as T

    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        run = T.build(compose_cfg(overrides), data=planted_data())
        if prepare:
            T.prepare(run)
        return run
    finally:
        os.chdir(old)


def with_false_negatives():
    """Planted data plus, for every training query ``tT_qNN``, an unlabelled document whose
    text is the query itself (``tT_fnNN``, :func:`false_negative`): any encoder scores it 1 with
    the query, above the labelled positive."""
    data = planted_data()
    for qid in data.qrels["train"]:
        data.corpus[false_negative(qid)] = {"title": "", "text": data.queries[qid]}
    return data


def false_negative(qid: str) -> str:
    topic, q = qid.split("_")
    return f"{topic}_fn{q[1:]}"
