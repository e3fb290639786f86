"""Effect tests of the negatives strategies through the real ``trainer.fit``.

Each strategy runs on planted data beside a baseline run of the same configuration without
it: the batches are the same (same seed, same sampler), so what differs at a step is what the
strategy did. Before a strategy first acts the two runs are identical, so its first action
shows in the loss of that very step: masking candidates lowers an InfoNCE loss, adding
negatives raises it, reweighting moves it.
"""

from __future__ import annotations

import pytest
import torch

from hnm.negatives.progressive import ProgressiveWeighting
from hnm.negatives.queue import MomentumQueue
from hnm.strategy_report import effect_metrics, no_effect
from tests.effects.harness import TOPIC_WORDS, planted_data, record_fit, topic_of

pytestmark = pytest.mark.slow

B = 16                                      # the smoke experiment's batch size
NOISY = ["t0_q03", "t2_q05", "t4_q01", "t6_q06"]
# DBPM's thresholds sit midway between the clean and the planted pairs' z-scores of this small
# population (64 pairs; the default 2 sigma suits real data sets)
DBPM_EPOCHS = ["trainer.max_epochs=2", "+negatives=dbpm", "negatives.dbpm.threshold=1.5",
               "negatives.dbpm.warmup_epochs=1", "negatives.dbpm.within_epoch_warmup=null"]
DBPM_WITHIN = ["+negatives=dbpm", "negatives.dbpm.threshold=1.0"]


def duplicate_data():
    """planted_data where pairs 2m+1 have the positive text of pairs 2m of their topic under
    their own id: when both share a batch, each one's positive is a false negative of the
    other query that the module's known-positive mask (by id) does not catch."""
    data = planted_data()
    for t in range(8):
        for i in range(1, 8, 2):
            data.corpus[f"t{t}_d{i:02d}"] = dict(data.corpus[f"t{t}_d{i - 1:02d}"])
    return data


def noisy_data():
    """planted_data with four mislabeled pairs (NOISY): a query made of words of every topic
    whose positive shares no word with any text, so every batch has candidates that beat
    it; their loss stays high while the clean pairs' falls."""
    data = planted_data()
    words = ["zebra", "quantum", "violin", "harbor"]
    for n, qid in enumerate(NOISY):
        data.queries[qid] = " ".join(w[n % 4] for w in TOPIC_WORDS)
        data.corpus[qid.replace("_q", "_d")] = {"title": "", "text": " ".join(words[n:] +
                                                                             words[:n])}
    return data


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """``fit(name, overrides, data, probe)``: each named run once per module."""
    cache = {}

    def fit(name, overrides, data=planted_data, probe=None):
        if name not in cache:
            cache[name] = record_fit(tmp_path_factory.mktemp(name), overrides, data=data(),
                                     probe=probe)
        return cache[name]

    return fit


def same_batches(a, b) -> None:
    assert len(a.steps) == len(b.steps) and a.steps
    for x, y in zip(a.steps, b.steps):
        assert (x.epoch, x.global_step, x.idx) == (y.epoch, y.global_step, y.idx)


def planted_pairs(rec, step) -> torch.Tensor:
    """(B, N) True where candidate j is another id with the text of query i's positive."""
    texts = [rec.run.data.doc_text(d) for d in step.doc_ids]
    out = torch.zeros(step.batch_size, len(texts), dtype=torch.bool)
    for i in range(step.batch_size):
        for j, t in enumerate(texts):
            out[i, j] = j != i and t == texts[i] and step.doc_ids[j] != step.doc_ids[i]
    return out


def new_masks(rec, base, step_no: int) -> torch.Tensor:
    s, b = rec.steps[step_no], base.steps[step_no]
    n = b.mask.shape[1]
    assert not (b.mask & ~s.mask[:, :n]).any(), "a strategy unmasked a candidate"
    return s.mask[:, :n] & ~b.mask


# -- masking -----------------------------------------------------------------------------------
def test_gist_masks_planted_false_negatives_from_the_first_step(fits) -> None:
    def probe(run):
        guide = run.module.strategies[0].guide
        return (any(m is guide for m in run.module.frozen_models()),
                any(m.training for m in guide.modules()))

    base = fits("base_dup", [], duplicate_data)
    # the starting model as guide (an explicit opt-in): it still rates exact duplicates of
    # the positive as high as the positive
    gist = fits("gist", ["+negatives=gist", "negatives.gist.guide='${encoder}'"], duplicate_data,
                probe)
    same_batches(gist, base)
    total = 0
    for k, step in enumerate(gist.steps):
        planted = planted_pairs(gist, step)
        new = new_masks(gist, base, k)
        assert not base.steps[k].mask[planted].any()        # the baseline trains against them
        assert new[planted].all(), f"step {k}: a planted false negative was not masked"
        total += int(new.sum())
        assert step.probe == (True, False)                   # listed as frozen, in eval mode
    assert planted_pairs(gist, gist.steps[0]).any()          # epoch 0, step 0 has some
    assert gist.losses[0] < base.losses[0] - 1e-4            # fewer negatives: a lower loss
    assert gist.run.module.strategies[0].effect() == {"candidates_masked": float(total)}


def test_false_negative_mask_masks_exactly_the_planted_duplicates(fits) -> None:
    base = fits("base_dup", [], duplicate_data)
    fnm = fits("fnm", ["+negatives=false_negative_mask"], duplicate_data)
    same_batches(fnm, base)
    total = 0
    for k, step in enumerate(fnm.steps):
        new = new_masks(fnm, base, k)
        assert torch.equal(new, planted_pairs(fnm, step)), f"step {k}"
        total += int(new.sum())
    assert total and fnm.steps[0].logs["fnm_text_dups"] > 0
    assert fnm.losses[0] < base.losses[0] - 1e-4
    assert fnm.run.module.strategies[0].effect() == {"candidates_masked": float(total),
                                                      "text_duplicates": float(total)}


def test_a_strategy_that_changed_nothing_is_reported(fits) -> None:
    """No duplicates in the plain planted data: false_negative_mask masks nothing, and the
    end-of-run report names it."""
    rec = fits("fnm_plain", ["+negatives=false_negative_mask"])
    parts = rec.run.parts.reported()
    effects = effect_metrics(parts)
    assert effects["strategy/negatives/false_negative_mask/candidates_masked"] == 0.0
    assert no_effect(effects, list(parts)) == ["negatives/false_negative_mask"]


# -- extra candidates --------------------------------------------------------------------------
def test_mochi_adds_synthetic_negatives_from_the_first_step(fits) -> None:
    base = fits("base", [])
    mochi = fits("mochi", ["+negatives=mochi"])
    same_batches(mochi, base)
    assert all(s.extra == 0 for s in base.steps)
    assert all(s.extra == 4 for s in mochi.steps)            # n_mix (+ n_query_mix=0) per query
    assert mochi.losses[0] > base.losses[0] + 1e-4           # more negatives: a higher loss
    assert mochi.run.module.strategies[0].effect() == {
        "synthetic_negatives": float(sum(s.batch_size * s.extra for s in mochi.steps))}


def _shared_extras(rec, base):
    """Per step: the ids of the candidate columns beyond the baseline's."""
    return [s.doc_ids[len(b.doc_ids):] for s, b in zip(rec.steps, base.steps)]


def _positives(step):
    return step.doc_ids[:step.batch_size]


@pytest.mark.parametrize(("name", "kept"), [("queue", None), ("prebatch", 2)])
def test_queue_and_prebatch_add_earlier_positives_from_the_second_step(fits, name,
                                                                        kept) -> None:
    base = fits("base", [])
    rec = fits(name, [f"+negatives={name}"])
    same_batches(rec, base)
    extras = _shared_extras(rec, base)
    assert extras[0] == []                                   # step 0: nothing queued yet
    for k in range(1, len(rec.steps)):                       # then the earlier positives
        earlier = rec.steps[:k] if kept is None else rec.steps[max(0, k - kept):k]
        assert extras[k] == [d for s in earlier for d in _positives(s)], f"step {k}"
    assert rec.losses[0] == pytest.approx(base.losses[0], abs=1e-6)   # same until it acts
    assert rec.losses[1] > base.losses[1] + 1e-4
    effect = rec.run.module.strategies[0].effect()
    assert effect["candidates_added"] == float(sum(len(e) for e in extras))


def test_queue_momentum_updates_once_per_optimizer_step(tmp_path, monkeypatch) -> None:
    calls = []
    update = MomentumQueue.momentum_update

    def counted(self, online):
        calls.append(1)
        return update(self, online)

    monkeypatch.setattr(MomentumQueue, "momentum_update", counted)
    rec = record_fit(tmp_path, ["+negatives=queue", "+trainer.accumulate_grad_batches=2"],
                     probe=lambda run: len(calls))
    assert len(rec.steps) == 4 and rec.run.trainer.global_step == 2   # 4 micro-batches
    assert len(calls) == 2                                   # one update per optimizer step
    assert [s.probe for s in rec.steps] == [0, 0, 1, 1]      # after micro-batches 2 and 4
    # the queue still takes every micro-batch's positives
    assert [len(s.doc_ids) - B for s in rec.steps] == [0, 16, 32, 48]


# -- weights -----------------------------------------------------------------------------------
def test_progressive_weighs_easy_queries_first_then_hard_ones(fits, tmp_path,
                                                             monkeypatch) -> None:
    seen = []
    weights = ProgressiveWeighting.weights

    def recorded(self, ctx):
        w = weights(self, ctx)
        seen.append((self.hardness(ctx).clone(), w.detach().clone()))
        return w

    monkeypatch.setattr(ProgressiveWeighting, "weights", recorded)
    base = fits("base", [])
    rec = record_fit(tmp_path, ["+negatives=progressive"])   # recorded: not cached
    same_batches(rec, base)
    assert len(seen) == len(rec.steps)
    for step, (_, w) in zip(rec.steps, seen):
        assert torch.allclose(step.weights, w)               # what reached the loss
        assert w.mean().item() == pytest.approx(1.0, abs=1e-5)
    assert all(torch.equal(s.weights, torch.ones(B)) for s in base.steps)
    for k, sign in ((0, -1), (len(seen) - 1, 1)):            # first step easy, last step hard
        h, w = seen[k]
        assert rec.steps[k].logs["progressive_focus"] == pytest.approx(sign)
        harder = h[:, None] < h[None, :]                     # harder[i, j]: j harder than i
        assert harder.any()
        assert (torch.sign(w[None, :] - w[:, None])[harder] == sign).all(), k
    assert rec.losses[0] != pytest.approx(base.losses[0], abs=1e-4)
    moved = sum(int(((w - 1).abs() > 1e-6).sum()) for _, w in seen)
    assert rec.run.module.strategies[0].effect() == {"pairs_reweighted": float(moved)}


def _flagged(step) -> list[str]:
    return [q for q, w in zip(step.qids, step.weights.tolist()) if w < 1]


def test_dbpm_flags_planted_high_loss_pairs_after_its_warm_up(fits) -> None:
    """The paper's history rule: nothing in epoch 0, then the planted pairs (and only they)
    are down-weighted by their epoch-0 loss history."""
    base = fits("base_noisy2", ["trainer.max_epochs=2"], noisy_data)
    rec = fits("dbpm2", DBPM_EPOCHS, noisy_data)
    same_batches(rec, base)
    for s, b in zip(rec.epoch(0), base.epoch(0)):            # warm-up: the baseline's run
        assert torch.equal(s.weights, torch.ones(B)) and s.loss == pytest.approx(b.loss,
                                                                                abs=1e-6)
    epoch1 = rec.epoch(1)
    noisy_visits = [q for s in epoch1 for q in s.qids if q in NOISY]
    assert noisy_visits
    for s in epoch1:
        assert _flagged(s) == [q for q in s.qids if q in NOISY], s.global_step
        assert torch.allclose(s.weights[s.weights < 1], torch.tensor(0.1))
    first = next(k for k, s in enumerate(rec.steps) if _flagged(s))
    assert rec.losses[first] != pytest.approx(base.losses[first], abs=1e-4)
    assert rec.run.module.strategies[0].effect() == {
        "pairs_flagged": float(len(noisy_visits)), "pairs_flagged_within_epoch": 0.0,
        "pairs_reweighted": float(len(noisy_visits))}


def test_dbpm_acts_within_a_one_epoch_run(fits) -> None:
    """The default configuration in a 1-epoch run: after its warm-up (step 1 of 4) pairs
    without history are judged by their current loss; planted pairs only are flagged."""
    base = fits("base_noisy1", [], noisy_data)
    rec = fits("dbpm1", DBPM_WITHIN, noisy_data)
    same_batches(rec, base)
    assert torch.equal(rec.steps[0].weights, torch.ones(B))            # the warm-up step
    assert rec.losses[0] == pytest.approx(base.losses[0], abs=1e-6)
    flagged = [q for s in rec.steps for q in _flagged(s)]
    assert flagged and set(flagged) <= set(NOISY)
    first = next(k for k, s in enumerate(rec.steps) if _flagged(s))
    assert rec.losses[first] != pytest.approx(base.losses[first], abs=1e-4)
    effect = rec.run.module.strategies[0].effect()
    assert effect["pairs_flagged_within_epoch"] == effect["pairs_flagged"] == len(flagged)


def test_dbpm_records_what_the_module_hands_to_after_loss(fits) -> None:
    """One observation per visit, from the loss's per-query values when it reports them,
    else (visibly) from DBPM's own InfoNCE."""
    rec = fits("dbpm1", DBPM_WITHIN, noisy_data)
    dbpm = rec.run.module.strategies[0]
    assert int(dbpm.loss_count.sum()) == sum(s.batch_size for s in rec.steps)
    for s in rec.steps:
        assert s.logs["dbpm_loss_fallback"] == float(s.per_query is None)
    reported = [s for s in rec.steps if s.per_query is not None]
    if reported:                                  # a loss with ReportsPerQuery
        total = torch.zeros_like(dbpm.loss_sum)
        for s in reported:
            total.index_add_(0, torch.tensor(s.idx), s.per_query.double())
        assert torch.allclose(dbpm.loss_sum, total)
    assert dbpm.fallback_batches == len(rec.steps) - len(reported)


def test_planted_pairs_have_the_highest_losses(fits) -> None:
    """The planting works: over the run the planted pairs have the four highest mean losses."""
    rec = fits("dbpm2", DBPM_EPOCHS, noisy_data)
    dbpm = rec.run.module.strategies[0]
    mean = dbpm.loss_sum / dbpm.loss_count.clamp(min=1)
    qid = {i: q for s in rec.steps for i, q in zip(s.idx, s.qids)}
    noisy = sorted(i for i, q in qid.items() if q in NOISY)
    assert len(noisy) == 4 and {topic_of(qid[i]) for i in noisy} == {0, 2, 4, 6}
    assert set(torch.topk(mean, 4).indices.tolist()) == set(noisy)
