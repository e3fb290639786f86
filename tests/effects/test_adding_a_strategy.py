"""The two examples of ``docs/adding-a-strategy.md``, written as the guide says: a new in-batch
strategy and a new miner, each with its algorithmic unit test and its effect test through the
real ``hnm train`` build and ``trainer.fit``, plugged in through the configuration alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from hnm.errors import check_range
from hnm.miners.base import Candidates, MinerBase
from hnm.modules.pipeline import declared_phases
from hnm.state import PartState
from hnm.strategy_report import effect_metrics
from hnm.types import EmbedFn, Phase, ScoreContext
from tests.effects.harness import record_fit, topic_of
from tests.losses._ctx import make_ctx
from tests.miners.helpers import no_embed, planted


# -- step 1 of the guide: the in-batch strategy -------------------------------------------------
class KeepHardest(PartState):
    """Keep only the ``k`` hardest usable negatives of each query (by raw score); mask the
    others, so the loss contrasts each positive with its hardest candidates only.

    Shapes: reads ``ctx.scores()`` (B, N), writes ``ctx.mask`` (B, N). Effect:
    ``candidates_masked`` (query-candidate pairs it masked, over the run).

    Args:
        k: negatives kept per query.
    """

    phases = (Phase.IN_BATCH,)

    def __init__(self, k: int = 4) -> None:
        check_range("negatives.keep_hardest.k", k, 1)
        self.k = int(k)
        self.masked = 0

    def __call__(self, ctx: ScoreContext) -> ScoreContext:
        usable = ctx.negative_mask()
        with torch.no_grad():
            s = ctx.scores().masked_fill(~usable, float("-inf"))
            kth = s.topk(min(self.k, s.shape[1]), dim=1).values[:, -1:]
        new = usable & (s < kth)
        ctx.mask |= new
        self.masked += int(new.sum())
        return ctx

    def effect(self) -> dict[str, float]:
        return {"candidates_masked": float(self.masked)}


# -- step 2 of the guide: the miner -------------------------------------------------------------
class WordOverlapMiner(MinerBase):
    """Negatives that share the most words with the query (a lexical search without BM25's
    weights); the shared window, filters, sampling and padding of
    :class:`~hnm.miners.base.MinerBase` apply.

    Args:
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`.
    """

    uses_encoder = False

    def candidates(self, embed_queries: EmbedFn, embed_docs: EmbedFn, k: int) -> Candidates:
        docs = [set(self.data.doc_text(d).lower().split()) for d in self.doc_ids]
        scores = np.array([[len(set(self.data.queries[q].lower().split()) & d) for d in docs]
                           for q in self.qids], dtype=np.float32)
        idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return Candidates(idx, np.take_along_axis(scores, idx, 1), scores[self.pos_q, self.pos_d])


STRATEGY = ("+negatives={keep_hardest: {_target_: tests.effects.test_adding_a_strategy.KeepHardest, "
            "k: 2}}")
MINER = ("+miner={_target_: tests.effects.test_adding_a_strategy.WordOverlapMiner, "
         "num_negatives: 2, sampling_strategy: top, verbose: false}")


# -- the unit tests: a case where the right behaviour is known by construction -------------------
def test_keep_hardest_masks_all_but_the_k_hardest_usable_negatives() -> None:
    assert declared_phases(KeepHardest()) == (Phase.IN_BATCH,)
    ctx = make_ctx(b=4, k=2)
    ctx.mask[0, 5] = True  # masked before: neither kept nor counted
    s = ctx.scores()
    strategy = KeepHardest(k=2)
    out = strategy(ctx)
    for i in range(4):
        usable = [j for j in range(12) if j != i and not (i == 0 and j == 5)]
        hardest = sorted(usable, key=lambda j: -float(s[i, j]))[:2]
        assert [j for j in range(12) if j != i and not out.mask[i, j]] == sorted(hardest)
    assert strategy.effect() == {"candidates_masked": 8 + 3 * 9}  # 10 and 11 usable, 2 kept


def test_word_overlap_ranks_by_shared_words_and_never_returns_a_positive() -> None:
    data, pairs = planted(12, 3)
    data.queries["q0"] = "doc 7 please"  # shares "doc" with every text, "7" with d7 alone
    miner = WordOverlapMiner(num_negatives=2, sampling_strategy="top", verbose=False)
    miner.mine(data, pairs, no_embed, no_embed)
    ids, _ = miner.negatives([0, 1, 2], 0, 0)
    assert ids[0][0] == "d7"  # the most words in common
    assert all(pairs.pos_ids[i] not in row for i, row in enumerate(ids))
    assert miner.effect()["negatives_attached"] == 6


# -- the effect tests: through the real build and trainer.fit, from epoch 0 ---------------------
@pytest.mark.slow
def test_keep_hardest_changes_what_reaches_the_loss(tmp_path, baseline) -> None:
    rec = record_fit(tmp_path, [STRATEGY])
    for step in rec.steps:
        usable = ~step.mask
        usable[torch.arange(step.batch_size), torch.arange(step.batch_size)] = False
        assert (usable.sum(1) <= 2).all()
    assert rec.steps[0].idx == baseline.steps[0].idx  # the same batch: only the mask differs
    assert rec.steps[0].loss != pytest.approx(baseline.steps[0].loss, abs=1e-4)
    assert effect_metrics(rec.run.parts.reported())[
        "strategy/negatives/keep_hardest/candidates_masked"] > 0


@pytest.mark.slow
def test_word_overlap_negatives_reach_the_step_and_share_the_topic(tmp_path) -> None:
    rec = record_fit(tmp_path, [MINER])
    rows: list[tuple[str, Sequence[str]]] = []
    for step in rec.steps:
        assert step.num_negatives == 2
        b = step.batch_size
        rows += [(q, step.doc_ids[b + 2 * i: b + 2 * i + 2]) for i, q in enumerate(step.qids)]
    # the planted topics have disjoint words: the most overlapping negatives (top) come from
    # the query's own topic
    assert np.mean([topic_of(d) == topic_of(q) for q, row in rows for d in row]) > 0.9
    assert effect_metrics(rec.run.parts.reported())["strategy/miner/negatives_attached"] > 0
