"""Denoising: planted false negatives (the guide scores them above the positive) are dropped,
the rest kept, and the guide's scores come out as aligned teacher scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnm.errors import ConfigError
from hnm.miners.denoise import DenoiseMiner
from tests.miners.helpers import planted, table_embed

DIM, N_DOCS, N_Q = 64, 40, 4
WINDOW = 12  # range_max
PLANTED = {0: [5, 9], 1: [12], 2: [], 3: [7, 20, 33]}  # query -> docs the guide loves


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def geometry():
    """Retriever and guide embeddings of every text. Retriever: random. Guide: each query's
    positive scores 0.5 with it, planted documents ~0.9, everything else ~0 (random)."""
    data, pairs = planted(N_DOCS, N_Q)
    rng = np.random.default_rng(0)
    texts = list(data.queries.values()) + [data.doc_text(d) for d in data.corpus]
    ret = {t: unit(rng.standard_normal(DIM)) for t in texts}
    for i in range(N_Q):  # make the planted docs retriever-hard too, so they are candidates
        q = ret[data.queries[f"q{i}"]]
        for j in PLANTED[i]:
            ret[data.doc_text(f"d{j}")] = unit(q + 0.8 * unit(rng.standard_normal(DIM)))
    guide = {t: unit(rng.standard_normal(DIM)) * 0.1 for t in texts}
    basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0]
    for i in range(N_Q):
        guide[data.queries[f"q{i}"]] = basis[i]
        guide[data.doc_text(f"d{i}")] = unit(0.5 * basis[i] + np.sqrt(0.75) * basis[10 + i])
        for j in PLANTED[i]:
            guide[data.doc_text(f"d{j}")] = unit(0.9 * basis[i] + np.sqrt(0.19) * basis[20 + j])
    for t in texts:
        guide[t] = unit(guide[t])
    return data, pairs, ret, guide


def brute_force(data, pairs, ret, guide, keep) -> dict[str, list[str]]:
    """Each query's window of non-positive candidates by retriever score, then ``keep``."""
    out = {}
    for qid in pairs.qids:
        q = ret[data.queries[qid]]
        docs = sorted(data.corpus, key=lambda d: (-float(q @ ret[data.doc_text(d)]), d))
        window = [d for d in docs if d not in pairs.positives[qid]][:WINDOW]
        gq = guide[data.queries[qid]]
        gpos = min(float(gq @ guide[data.doc_text(p)]) for p in pairs.positives[qid])
        out[qid] = [d for d in window if keep(float(gq @ guide[data.doc_text(d)]), gpos)]
    return out


def pools(miner) -> dict[str, list[str]]:
    return {qid: [miner.doc_ids[r] for r in miner.pool.idx[q, :miner.pool.count[q]]]
            for q, qid in enumerate(miner.qids)}


def run(**kw):
    data, pairs, ret, guide = geometry()
    miner = DenoiseMiner(guide=table_embed(guide), num_negatives=3, range_max=WINDOW,
                         sampling_strategy="random", verbose=False, **kw)
    f = table_embed(ret)
    miner.mine(data, pairs, f, f)
    return miner, data, pairs, ret, guide


def test_margin_drops_exactly_the_planted_false_negatives() -> None:
    miner, data, pairs, ret, guide = run(guide_margin=0.0)
    before = brute_force(data, pairs, ret, guide, lambda g, p: True)
    for i, docs in PLANTED.items():  # the planted ones were hard candidates of the retriever
        assert {f"d{j}" for j in docs} <= set(before[f"q{i}"])
    expected = brute_force(data, pairs, ret, guide, lambda g, p: not g > p)
    assert pools(miner) == expected
    for i, docs in PLANTED.items():
        assert not {f"d{j}" for j in docs} & set(expected[f"q{i}"])
        assert set(expected[f"q{i}"]) == set(before[f"q{i}"]) - {f"d{j}" for j in docs}
    assert miner.last_stats["removed_guide_margin"] == sum(map(len, PLANTED.values()))


def test_threshold_and_margin_match_brute_force() -> None:
    miner, data, pairs, ret, guide = run(max_guide_score=0.8, guide_margin=None)
    assert pools(miner) == brute_force(data, pairs, ret, guide, lambda g, p: not g > 0.8)
    miner, *_ = run(guide_margin=0.45)
    assert pools(miner) == brute_force(data, pairs, ret, guide, lambda g, p: not g > p - 0.45)


def test_teacher_scores_are_the_guide_scores_aligned_with_the_negatives() -> None:
    miner, data, pairs, ret, guide = run(guide_margin=0.0)
    neg, teacher = miner.negatives(range(len(pairs)), 0, 0)
    assert teacher is not None and teacher.shape == (len(pairs), 4)
    for i, (qid, pos) in enumerate(zip(pairs.qids, pairs.pos_ids)):
        gq = guide[data.queries[qid]]
        want = [gq @ guide[data.doc_text(d)] for d in [pos, *neg[i]]]
        np.testing.assert_allclose(teacher[i], want, atol=1e-5)
        assert np.all(teacher[i, 1:] <= teacher[i, 0] + 1e-6)


def test_default_guide_is_the_starting_model_and_reuses_its_embeddings() -> None:
    data, pairs, ret, _ = geometry()
    calls: list[int] = []
    f = table_embed(ret)

    def counted(texts):
        calls.append(len(texts))
        return f(texts)

    miner = DenoiseMiner(num_negatives=3, range_max=WINDOW, verbose=False, min_keep_share=0.0)
    miner.mine(data, pairs, counted, counted)
    assert calls == [N_Q, N_DOCS]  # no second encoding for the guide
    assert pools(miner) == brute_force(data, pairs, ret, ret, lambda g, p: not g > p)


def test_cross_encoder_guide(tmp_path) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from hnm.encoders.factory import minilm_path

    cfg = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, num_labels=1,
                     initializer_range=1.0)  # spread-out scores, far from float noise
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(tmp_path)
    data, pairs, ret, _ = geometry()
    ce = CrossEncoder(str(tmp_path))
    docs = list(data.corpus)
    raw = {(q, d): float(s) for q in pairs.qids for d, s in zip(docs, ce.predict(
        [(data.queries[q], data.doc_text(d)) for d in docs], show_progress_bar=False))}
    # the threshold: the middle of the widest gap among the middle third of the scores, far
    # from any score (batch composition changes a cross-encoder's output by float noise)
    vals = np.sort(np.array(list(raw.values())))
    lo, hi = len(vals) // 3, 2 * len(vals) // 3
    i = lo + int(np.argmax(np.diff(vals[lo:hi + 1])))
    assert vals[i + 1] - vals[i] > 1e-4
    bar = float(vals[i] + vals[i + 1]) / 2
    miner = DenoiseMiner(cross_encoder=str(tmp_path), max_guide_score=bar, guide_margin=None,
                         num_negatives=3, range_max=WINDOW, verbose=False,
                         min_keep_share=0.0)
    f = table_embed(ret)
    miner.mine(data, pairs, f, f)
    expected = {}
    for qid in pairs.qids:
        q = ret[data.queries[qid]]
        order = sorted(docs, key=lambda d: (-float(q @ ret[data.doc_text(d)]), d))
        window = [d for d in order if d not in pairs.positives[qid]][:WINDOW]
        expected[qid] = [d for d in window if not raw[(qid, d)] > bar]
    assert pools(miner) == expected
    assert 0 < miner.last_stats["removed_guide_score"] < len(pairs) * WINDOW


def test_validation() -> None:
    with pytest.raises(ConfigError, match="guide_margin"):
        DenoiseMiner(guide_margin=-1)
    with pytest.raises(ConfigError, match="both set"):
        DenoiseMiner(guide=lambda t: t, cross_encoder="x")


def test_min_keep_share_restores_the_least_suspect_candidates() -> None:
    """When the guide would drop more than (1 - min_keep_share) of a query's candidates, only
    the ones it scores highest are dropped: every query keeps ceil(share * window)."""
    # a guide that loves everything: every candidate scores above every positive
    miner, data, pairs, ret, guide = run(guide_margin=0.0, max_guide_score=-1.0,
                                         min_keep_share=0.5)
    before = brute_force(data, pairs, ret, guide, lambda g, p: True)
    for q, qid in enumerate(miner.qids):
        kept = pools(miner)[qid]
        assert len(kept) == int(np.ceil(0.5 * len(before[qid])))
        gq = guide[data.queries[qid]]
        score = {d: float(gq @ guide[data.doc_text(d)]) for d in before[qid]}
        dropped = set(before[qid]) - set(kept)
        assert max(score[d] for d in kept) <= min(score[d] for d in dropped) + 1e-6
        assert miner.never_pad(q) == {list(miner.doc_ids).index(d) for d in dropped}
    n = sum(len(v) for v in before.values())
    assert miner.last_stats["kept"] == sum(int(np.ceil(0.5 * len(v))) for v in before.values())
    assert miner.last_stats["restored_min_keep"] == miner.last_stats["kept"] <= n


def test_min_keep_share_leaves_a_light_filter_alone() -> None:
    """The planted false negatives (at most 3 of 12 a query) are dropped as before."""
    a, *_ = run(guide_margin=0.0, min_keep_share=0.5)
    b, *_ = run(guide_margin=0.0, min_keep_share=0.0)
    assert pools(a) == pools(b)
    assert a.last_stats["restored_min_keep"] == 0


def test_min_keep_share_is_a_share() -> None:
    with pytest.raises(ConfigError, match="min_keep_share"):
        DenoiseMiner(min_keep_share=1.5)
