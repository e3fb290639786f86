"""Drive a real ``hnm train`` run (build -> prepare -> ``trainer.fit``) on planted data and record
what ``training_step`` received and what reached the loss, step by step.

The effect tests of every strategy use this: a strategy's unit test shows it does the right
thing on a hand-built context; its effect test shows that inside Lightning, from epoch 0 on,
it changed what the model trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from hnm.cli import config_dir
from hnm.data.dataset import RetrievalData

# the planted data: topics with disjoint vocabularies, so that any encoder (the tiny random
# one included) puts a topic's texts close together and other topics' far apart
TOPIC_WORDS = [
    ["sort", "order", "rank", "arrange"], ["file", "disk", "path", "folder"],
    ["socket", "network", "packet", "port"], ["date", "clock", "calendar", "timezone"],
    ["image", "pixel", "colour", "bitmap"], ["thread", "lock", "mutex", "queue"],
    ["parse", "token", "grammar", "lexer"], ["matrix", "vector", "tensor", "scalar"],
]
BASE = ["experiment=smoke", "logger=none", "eval.zero_shot=false", "data.leakage_check=false",
        "+trainer.enable_progress_bar=false", "trainer.max_steps=-1", "trainer.max_epochs=1"]


def planted_data(n_per_topic: int = 8, n_test: int = 2, n_topics: int = 8) -> RetrievalData:
    """``n_topics`` x ``n_per_topic`` training pairs (+ ``n_test`` test queries per topic), each
    query with one positive; every text of topic ``t`` uses topic ``t``'s words only, plus a
    number. Topic of pair ``i`` (in TrainPairs order) is ``topic_of(qid)``."""
    corpus, queries, train, test = {}, {}, {}, {}
    for t in range(n_topics):
        words = TOPIC_WORDS[t % len(TOPIC_WORDS)]
        for i in range(n_per_topic + n_test):
            qid, did = f"t{t}_q{i:02d}", f"t{t}_d{i:02d}"
            w = words[i % 4], words[(i + 1) % 4], words[(i + 2) % 4]
            queries[qid] = f"{w[0]} {w[1]} {w[2]} {i}"
            corpus[did] = {"title": f"t{t}.f{i}", "text": f"{w[2]} {w[1]} {w[0]} {words[3]} {i}"}
            (train if i < n_per_topic else test)[qid] = {did: 1}
    return RetrievalData("planted", corpus, queries, {"train": train, "test": test})


def topic_of(qid_or_did: str) -> int:
    return int(qid_or_did.split("_")[0][1:])


@dataclass
class Step:
    epoch: int
    global_step: int
    idx: list[int]
    qids: list[str]
    doc_ids: list[str]
    num_negatives: int
    mask: torch.Tensor
    weights: torch.Tensor
    extra: int
    teacher: torch.Tensor | None
    loss: float
    per_query: torch.Tensor | None
    modes: dict[str, bool]
    logs: dict[str, float]
    batch_size: int
    probe: Any = None
    candidate_weights: torch.Tensor | None = None


@dataclass
class Recording:
    run: Any
    steps: list[Step] = field(default_factory=list)

    @property
    def losses(self) -> list[float]:
        return [s.loss for s in self.steps]

    @property
    def served(self) -> int:
        """Training pairs that reached the loss, over the run."""
        return sum(s.batch_size for s in self.steps)

    def epoch(self, e: int) -> list[Step]:
        return [s for s in self.steps if s.epoch == e]


def compose_cfg(overrides: list[str], base: list[str] | None = None) -> DictConfig:
    """``base`` (default ``BASE``) then ``overrides``: a test of another experiment preset
    passes a base without ``experiment=smoke``."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=[*(BASE if base is None else base), *overrides])


def _modes(run: Any) -> dict[str, bool]:
    module = run.module
    out = {"encoder": module.encoder.training,
           "encoder_all": all(m.training for m in module.encoder.modules())}
    out["encoder_any"] = any(m.training for m in module.encoder.modules())
    if module.doc_encoder is not None:
        out["doc_encoder_any"] = any(m.training for m in module.doc_encoder.modules())
    frozen = module.frozen_models()
    out["frozen_any"] = any(m.training for f in frozen for m in f.modules())
    out["n_frozen"] = bool(frozen)
    return out


def record_fit(tmp_path: Path, overrides: list[str], data: RetrievalData | None = None,
               probe: Any = None, prepare_run: bool = True,
               base: list[str] | None = None) -> Recording:
    """Build the run of ``overrides`` (on ``data``, planted by default), run ``prepare`` and
    ``trainer.fit`` in ``tmp_path``, recording every training step; ``probe(run)`` is called
    inside every step and its value kept in ``Step.probe``."""
    import os

    from hnm import train as T

    cfg = compose_cfg(overrides, base)
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        run = T.build(cfg, data=planted_data() if data is None else data)
        rec = Recording(run)

        def observe(ctx: Any, loss: torch.Tensor, per_query: torch.Tensor | None) -> None:
            m = run.module
            rec.steps.append(Step(
                epoch=m.current_epoch, global_step=m.global_step, idx=ctx.pair_idx.tolist(),
                qids=list(ctx.qids), doc_ids=list(ctx.doc_ids), num_negatives=ctx.num_negatives,
                mask=ctx.mask.detach().clone(), weights=ctx.weights.detach().clone(),
                extra=sum(e.shape[1] for e in ctx.extra_logits),
                teacher=None if ctx.teacher is None else ctx.teacher.detach().clone(),
                loss=float(loss.detach()), per_query=None if per_query is None
                else torch.as_tensor(per_query).detach().clone(),
                modes=_modes(run), logs=dict(ctx.logs), batch_size=ctx.batch_size,
                probe=None if probe is None else probe(run),
                candidate_weights=None if ctx.candidate_weights is None
                else ctx.candidate_weights.detach().clone()))

        run.module.observers.append(observe)
        if prepare_run:
            T.prepare(run)
        T.fit(run)
        return rec
    finally:
        os.chdir(old)
