"""Effect tests of the miners through the real ``trainer.fit``: from epoch 0 on, every step
trains on the negatives the miner says it supplies, they are the ones its method defines
(checked against a plain loop over the corpus), and the loss differs from the no-miner
baseline; the schedule and configuration checks run before any training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hnm.errors import ConfigError
from hnm.strategy_report import effect_metrics
from tests.effects.harness import record_fit, topic_of
from tests.effects.miner_probes import (
    K,
    Ranker,
    build_only,
    false_negative,
    keep_start,
    negatives,
    rank_every_step,
    with_false_negatives,
    words,
)
from tests.effects.planted_files import negatives_file

QUIET = "miner.verbose=false"


def assert_every_step_has_negatives(rec, k: int = K) -> None:
    assert rec.epoch(0), "no training step in epoch 0"
    for s in rec.steps:
        assert s.num_negatives == k, (s.global_step, s.num_negatives)
        assert len(s.doc_ids) == s.batch_size * (1 + k)
        for qid, row in zip(s.qids, negatives(s)):
            assert not set(row) & rec.run.pairs.positives[qid], (qid, row)


def assert_changes_the_loss(rec, baseline) -> None:
    a, b = rec.steps[0], baseline.steps[0]
    assert a.idx == b.idx  # the same batch: only the candidates differ
    assert a.loss != pytest.approx(b.loss, abs=1e-4)


def same_topic(pairs_of_rows) -> float:
    hits = [topic_of(d) == topic_of(q) for q, row in pairs_of_rows for d in row]
    return float(np.mean(hits))


# -- static miners --------------------------------------------------------------------------
@pytest.mark.slow
def test_dense_static_trains_on_the_starting_encoders_top_ranks(tmp_path, baseline) -> None:
    rec = record_fit(tmp_path, ["+miner=dense_static", "miner.range_max=10", QUIET],
                     probe=keep_start())
    assert_every_step_has_negatives(rec)
    start = Ranker(rec.run, rec.steps[0].probe)
    checked = 0
    for s in rec.steps:
        for qid, row in zip(s.qids, negatives(s)):
            window = start.top(qid, 10)
            if window is not None:
                assert set(row) <= window, (s.global_step, qid, row)
                checked += 1
    assert checked >= rec.served // 2
    # hard: far more often the query's planted topic than a random document (9 of 79)
    assert same_topic((q, r) for s in rec.steps for q, r in zip(s.qids, negatives(s))) > 0.4
    fx = rec.run.miner.effect()
    assert fx["negatives_attached"] == K * rec.served and fx["negatives_padded"] == 0
    assert effect_metrics(rec.run.parts.reported())["strategy/miner/negatives_attached"] == \
        K * rec.served
    assert_changes_the_loss(rec, baseline)


@pytest.mark.slow
def test_bm25_trains_on_documents_sharing_words_with_the_query(tmp_path, baseline) -> None:
    rec = record_fit(tmp_path, ["+miner=bm25", QUIET])
    assert_every_step_has_negatives(rec)
    data = rec.run.pairs.data
    for s in rec.steps:
        for qid, row in zip(s.qids, negatives(s)):
            for d in row:
                assert words(data.queries[qid]) & words(data.doc_text(d)), (qid, d)
    fx = rec.run.miner.effect()
    assert fx["negatives_attached"] == K * rec.served and fx["negatives_padded"] == 0
    assert_changes_the_loss(rec, baseline)


@pytest.mark.slow
def test_from_file_trains_on_the_files_negatives(tmp_path, baseline) -> None:
    path = negatives_file(tmp_path)  # four per query: the next topic's first documents
    listed = {r["qid"]: r["neg_ids"] for r in map(json.loads, path.read_text().splitlines())}
    rec = record_fit(tmp_path, ["+miner=from_file", f"miner.path={path}", QUIET])
    assert_every_step_has_negatives(rec)
    for s in rec.steps:
        for qid, row in zip(s.qids, negatives(s)):
            assert row[:4] == listed[qid]
            assert row[4] not in listed[qid]  # the fifth pads the four-long list
    fx = rec.run.miner.effect()
    assert fx["negatives_attached"] == 4 * rec.served
    assert fx["negatives_padded"] == rec.served
    assert_changes_the_loss(rec, baseline)


@pytest.mark.slow
def test_star_mixes_top_ranks_and_random_documents(tmp_path, baseline) -> None:
    rec = record_fit(tmp_path, ["+miner=star", "miner.range_max=10", QUIET], probe=keep_start())
    assert_every_step_has_negatives(rec)
    start = Ranker(rec.run, rec.steps[0].probe)
    hard, rand = [], []
    for s in rec.steps:  # random_ratio 0.5 of 5: 3 hard, 2 random (round half to even)
        for qid, row in zip(s.qids, negatives(s)):
            window = start.top(qid, 10)
            assert window is None or set(row[:3]) <= window
            assert not set(row[3:]) & set(row[:3])
            hard.append((qid, row[:3]))
            rand.append((qid, row[3:]))
    assert same_topic(hard) > 0.4 and same_topic(rand) < 0.25
    fx = rec.run.miner.effect()
    assert fx["negatives_attached"] == 3 * rec.served
    assert fx["negatives_random"] == 2 * rec.served and fx["negatives_padded"] == 0
    assert_changes_the_loss(rec, baseline)


@pytest.mark.slow
def test_denoise_drops_planted_false_negatives_and_supplies_guide_scores(tmp_path,
                                                                          baseline) -> None:
    # the guide's filter alone (no floor): nothing above the positive's guide score survives
    rec = record_fit(tmp_path, ["+miner=denoise", "miner.min_keep_share=0", QUIET],
                     data=with_false_negatives(), probe=keep_start())
    assert_every_step_has_negatives(rec)
    start = Ranker(rec.run, rec.steps[0].probe)  # the retriever and the default guide
    for qid in start.qids:  # each planted document is its query's hardest non-positive...
        assert start.ranking(qid)[0][0] == false_negative(qid)
    scored = 0
    for s in rec.steps:
        b, k = s.batch_size, s.num_negatives
        assert s.teacher is not None and s.teacher.shape == (b, b * (1 + k))
        for i, (qid, row) in enumerate(zip(s.qids, negatives(s))):
            assert false_negative(qid) not in row  # ...and never reaches training
            pos = float(s.teacher[i, i])
            negs = s.teacher[i, b + i * k:b + (i + 1) * k].tolist()
            assert pos == pytest.approx(start.score(qid, s.doc_ids[i]), abs=1e-4)
            n = sum(math.isfinite(t) for t in negs)
            assert all(math.isnan(t) for t in negs[n:])  # survivors first, then padding (NaN)
            for d, t in zip(row[:n], negs[:n]):  # the guide's scores, none above the positive's
                assert t == pytest.approx(start.score(qid, d), abs=1e-4)
                assert t <= pos + 1e-6
            scored += n
    fx = rec.run.miner.effect()
    assert fx["candidates_dropped"] >= len(start.qids)
    assert fx["pairs_with_teacher_scores"] == rec.served
    assert fx["negatives_attached"] == scored > 0
    assert fx["negatives_padded"] == K * rec.served - scored
    assert_changes_the_loss(rec, baseline)


def test_denoise_default_floor_keeps_half_the_pool_and_still_drops_the_worst(tmp_path) -> None:
    """Defaults: the starting model guides itself, and its margin of 0 would drop every
    candidate ranked above the positive (most of the pool for the tiny model); the floor keeps
    half of every query's candidates (the queries where the tiny model ranks the positive low get
    some back: ``restored_min_keep`` > 0), giving back the ones the guide scores lowest, so the
    planted false negative (each query's top candidate) still never reaches training."""
    rec = record_fit(tmp_path, ["+miner=denoise", QUIET], data=with_false_negatives(),
                     probe=keep_start())
    assert_every_step_has_negatives(rec)
    miner = rec.run.miner
    stats = miner.last_stats
    assert stats["restored_min_keep"] > 0
    flagged = stats["removed_guide_margin"]  # before the floor gave some back
    candidates = stats["kept"] + flagged - stats["restored_min_keep"]
    assert stats["kept"] >= 0.5 * candidates
    for s in rec.steps:
        for qid, row in zip(s.qids, negatives(s)):
            assert false_negative(qid) not in row
            assert len(row) == s.num_negatives


# -- ANCE -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_ance_default_schedule_re_mines_with_the_current_weights(tmp_path, baseline) -> None:
    # 8 optimizer steps: the default refresh_every_fraction=0.25 re-mines before steps 2, 4, 6
    rec = record_fit(tmp_path, ["+miner=ance", "miner.sampling_strategy=top",
                                "trainer.max_epochs=2", QUIET], probe=rank_every_step())
    miner = rec.run.miner
    assert [s.global_step for s in rec.steps] == list(range(8))
    assert miner.refreshes == 3
    assert_every_step_has_negatives(rec)
    now = {s.global_step: s.probe["now"] for s in rec.steps}
    checked = changed = 0
    for s in rec.steps:
        mined_at = s.global_step // 2 * 2  # the last refresh (0: the first mining)
        for qid, row in zip(s.qids, negatives(s)):
            want, first = now[mined_at].top(qid), now[0].top(qid)
            if want is None:
                continue
            assert set(row) == want, (s.global_step, qid)
            checked += 1
            changed += s.global_step >= 2 and first is not None and want != first
    assert checked >= 0.8 * rec.served
    assert changed > 0  # the refreshes changed what the model trained on
    assert miner.effect()["refreshes"] == 3
    assert_changes_the_loss(rec, baseline)


@pytest.mark.slow
def test_ance_re_mines_once_per_optimizer_step_under_accumulation(tmp_path) -> None:
    rec = record_fit(tmp_path, ["+miner=ance", "miner.refresh_every_n_steps=1",
                                "miner.sampling_strategy=top",
                                "+trainer.accumulate_grad_batches=2",
                                "trainer.max_epochs=2", QUIET], probe=rank_every_step())
    # 8 micro-batches, 4 optimizer steps: re-mined before optimizer steps 1, 2 and 3, once each
    assert [s.global_step for s in rec.steps] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert rec.run.miner.refreshes == 3
    assert rec.run.module.refresher.miner_refreshes == 3
    first = {}
    for s in rec.steps:  # both micro-batches train on the pool mined at their step's start
        ranker = first.setdefault(s.global_step, s.probe["now"])
        for qid, row in zip(s.qids, negatives(s)):
            want = ranker.top(qid)
            assert want is None or set(row) == want


@pytest.mark.slow
def test_ance_async_swaps_in_the_previous_snapshot_which_stays_frozen(tmp_path) -> None:
    def probe(run):
        frozen = run.module.miner.frozen_models()
        return {"now": Ranker(run, run.module.encoder), "n_frozen": len(frozen),
                "frozen_train": any(m.training for f in frozen for m in f.modules()),
                "frozen_grad": any(p.requires_grad for f in frozen for p in f.parameters())}

    rec = record_fit(tmp_path, ["+miner=ance", "miner.async_refresh=true",
                                "miner.refresh_every_n_steps=1", "miner.sampling_strategy=top",
                                QUIET], probe=probe)
    assert [s.global_step for s in rec.steps] == [0, 1, 2, 3]
    now = {s.global_step: s.probe["now"] for s in rec.steps}
    for s in rec.steps:
        # a snapshot from step 1 on, in eval mode and without gradients, listed as frozen
        assert s.probe["n_frozen"] == (s.global_step >= 1)
        assert not s.probe["frozen_train"] and not s.probe["frozen_grad"]
        assert not s.modes["frozen_any"]
        # steps 0, 1: the first mining; step t >= 2: the snapshot taken at step t - 1
        mined_at = 0 if s.global_step < 2 else s.global_step - 1
        for qid, row in zip(s.qids, negatives(s)):
            want = now[mined_at].top(qid)
            assert want is None or set(row) == want, (s.global_step, qid)
    assert rec.run.miner.effect()["refreshes"] == 2  # swapped in at steps 2 and 3
    assert rec.run.miner.frozen_models() == []  # the last pass was cancelled at the end


def test_ance_refuses_a_period_no_shorter_than_the_run(tmp_path) -> None:
    # the planted run has 4 optimizer steps
    with pytest.raises(ConfigError, match=r"miner\.refresh_every_n_steps=100"):
        build_only(tmp_path, ["+miner=ance", "miner.refresh_every_n_steps=100"])
    with pytest.raises(ConfigError, match="two refreshes"):
        build_only(tmp_path, ["+miner=ance", "miner.refresh_every_n_steps=2",
                              "miner.async_refresh=true"])
    run = build_only(tmp_path, ["+miner=ance", "miner.refresh_every_n_steps=100",
                                "miner.allow_no_refresh=true"])
    assert not any(run.miner.needs_refresh(s) for s in range(4))


def test_ance_default_refreshes_in_the_default_run() -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from hnm.cli import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=["+miner=ance", "logger=none"])
    steps = math.ceil(cfg.data.max_train_pairs / cfg.batch_size)  # one epoch: 32 steps
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.max_steps == -1 and steps == 32
    miner = instantiate(cfg.miner)
    miner.check_schedule(1, steps)
    assert [s for s in range(steps) if miner.needs_refresh(s)] == [8, 16, 24]


# -- ADORE ----------------------------------------------------------------------------------
def _digest(model) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters()))


@pytest.mark.slow
def test_adore_retrieves_with_the_live_query_encoder_over_a_frozen_index(tmp_path,
                                                                          baseline) -> None:
    def probe(run):
        m = run.module
        return {"live": Ranker(run, m.encoder, m.doc_encoder),
                "static": Ranker(run, m.doc_encoder), "doc": _digest(m.doc_encoder),
                "query": _digest(m.encoder),
                "frozen": [f is m.doc_encoder for f in m.miner.frozen_models()]}

    rec = record_fit(tmp_path, ["+miner=adore", "miner.doc_encoder='${encoder}'",
                                "trainer.max_epochs=2", QUIET], probe=probe)
    assert_every_step_has_negatives(rec)
    first = rec.steps[0].probe
    checked = live_differs = 0
    for s in rec.steps:
        assert s.probe["doc"] == first["doc"] == first["query"]  # the frozen starting model
        assert not s.modes["doc_encoder_any"] and s.probe["frozen"] == [True]
        for qid, row in zip(s.qids, negatives(s)):
            want, static = s.probe["live"].top(qid), s.probe["static"].top(qid)
            if want is None:
                continue
            assert set(row) == want, (s.global_step, qid)
            checked += 1
            live_differs += static is not None and static != want
    assert rec.steps[-1].probe["query"] != first["query"]  # the query encoder trained
    assert checked >= 0.8 * rec.served
    assert live_differs > 0  # a static index search would have given other negatives
    fx = rec.run.miner.effect()
    assert fx["queries_retrieved_live"] == sum(len(set(s.qids)) for s in rec.steps)
    assert fx["negatives_attached"] == K * rec.served
    assert_changes_the_loss(rec, baseline)


# -- configurations that can never act ------------------------------------------------------
@pytest.mark.parametrize(("overrides", "word"), [
    (["miner.range_min=80", "miner.range_max=90"], r"miner\.range_min=80"),
    (["miner.max_score=-2"], "removed_max_score"),
], ids=["range_min-beyond-corpus", "filters-keep-nothing"])
def test_a_miner_that_would_only_pad_is_refused_before_training(tmp_path, overrides,
                                                                  word) -> None:
    with pytest.raises(ConfigError, match=word):
        build_only(tmp_path, ["+miner=dense_static", QUIET, *overrides], prepare=True)


def test_frozen_guide_models_are_put_in_eval_by_the_module(tmp_path) -> None:
    run = build_only(tmp_path, ["+miner=denoise", QUIET,
                                "miner.guide={_target_:hnm.encoders.factory.tiny_encoder,seed:3}"])
    guide = run.miner.guide
    assert isinstance(guide, torch.nn.Module)
    assert any(f is guide for f in run.module.frozen_models())
    guide.train()
    run.module.apply_modes()
    assert not any(m.training for m in guide.modules())
