"""ADORE: a fixed document index and frozen document encoder; per-step retrieval follows the
current query encoder."""

from __future__ import annotations

import copy

import lightning as L
import numpy as np
import pytest
import torch

from hnm.data.datamodule import RetrievalDataModule
from hnm.data.dataset import TrainPairs
from hnm.encoders import embed_fn, tiny_encoder
from hnm.errors import ConfigError
from hnm.losses.infonce import InfoNCELoss
from hnm.miners.adore import AdoreMiner
from hnm.modules.retrieval import RetrievalModule
from tests.conftest import make_data

K = 3


def brute_force(q_model, d_model, pairs: TrainPairs, qids: list[str], k: int = K):
    """Top-k non-positive documents of ``qids``: query by ``q_model``, documents by
    ``d_model``, by a loop over the corpus."""
    data = pairs.data
    doc_ids = list(data.corpus)
    d = embed_fn(d_model, progress=False)([data.doc_text(x) for x in doc_ids])
    fq = embed_fn(q_model, progress=False)
    out = {}
    for qid in qids:
        s = d @ fq([data.queries[qid]])[0]
        order = sorted(range(len(doc_ids)), key=lambda j: (-s[j], j))
        out[qid] = [doc_ids[j] for j in order if doc_ids[j] not in pairs.positives[qid]][:k]
    return out


def setup(tiny_model):
    pairs = TrainPairs.from_split(make_data(), "train")
    encoder = copy.deepcopy(tiny_model)
    miner = AdoreMiner(doc_encoder=encoder, num_negatives=K, range_max=None, verbose=False,
                       teacher_scores=True)
    # as hnm train: the module (and its frozen document encoder) first, then the first mining
    module = RetrievalModule(encoder, InfoNCELoss(), pairs, miner=miner, lr=1e-2)
    f = embed_fn(encoder, progress=False)
    miner.mine(pairs.data, pairs, f, f)
    return miner, module, pairs


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_the_module_gets_a_frozen_copy_of_the_starting_encoder(tiny_model) -> None:
    miner, module, _ = setup(tiny_model)
    doc = module.doc_encoder
    assert doc is not None and doc is not module.encoder
    assert not any(p.requires_grad for p in doc.parameters())
    assert all(p.requires_grad for p in module.encoder.parameters())
    for a, b in zip(doc.parameters(), tiny_model.parameters()):
        assert torch.equal(a, b)
    trainable = {id(p) for p in module.parameters() if p.requires_grad}  # what AdamW gets
    assert trainable and not trainable & {id(p) for p in doc.parameters()}


def test_per_step_retrieval_follows_the_query_encoder_over_a_fixed_index(tiny_model) -> None:
    miner, module, pairs = setup(tiny_model)
    docs_before = miner.index.docs.copy()
    batch = [0, 3, 5]
    qids = [pairs.qids[i] for i in batch]
    start = brute_force(tiny_model, tiny_model, pairs, qids)
    neg, teacher = miner.negatives(batch, 0, 0)
    assert dict(zip(qids, neg)) == start
    # the planted change: the query encoder moves, the document side must not
    module.encoder.load_state_dict(tiny_encoder(seed=1).state_dict())
    neg, teacher = miner.negatives(batch, 0, 1)
    expected = brute_force(module.encoder, tiny_model, pairs, qids)
    assert expected != start
    assert dict(zip(qids, neg)) == expected
    assert expected != brute_force(module.encoder, module.encoder, pairs, qids)
    np.testing.assert_array_equal(miner.index.docs, docs_before)
    # teacher scores: current query encoder against the frozen document embeddings
    fq = embed_fn(module.encoder, progress=False)
    q = fq([pairs.data.queries[x] for x in qids])
    row = {d: i for i, d in enumerate(pairs.data.corpus)}
    for i, p in enumerate(batch):
        ids = [pairs.pos_ids[p], *neg[i]]
        want = docs_before[[row[d] for d in ids]] @ q[i]
        np.testing.assert_allclose(teacher[i], want, atol=1e-5)


def test_training_updates_only_the_query_encoder(tiny_model) -> None:
    miner, module, pairs = setup(tiny_model)
    docs_before = miner.index.docs.copy()
    doc_before, q_before = params(module.doc_encoder), params(module.encoder)
    dm = RetrievalDataModule(pairs, batch_size=4, seed=0)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", use_distributed_sampler=False)
    trainer.fit(module, datamodule=dm)
    assert all(torch.equal(a, b) for a, b in zip(doc_before, params(module.doc_encoder)))
    assert any(not torch.equal(a, b) for a, b in zip(q_before, params(module.encoder)))
    np.testing.assert_array_equal(miner.index.docs, docs_before)
    assert miner.step_stats["candidates"] > 0


def test_without_a_module_the_starting_pool_is_used(tiny_model) -> None:
    pairs = TrainPairs.from_split(make_data(), "train")
    miner = AdoreMiner(doc_encoder=tiny_model, num_negatives=K, range_max=None, verbose=False)
    f = embed_fn(tiny_model, progress=False)
    miner.mine(pairs.data, pairs, f, f)
    neg, teacher = miner.negatives([0, 1], 0, 0)
    assert teacher is None
    assert dict(zip(pairs.qids[:2], neg)) == brute_force(tiny_model, tiny_model, pairs,
                                                         pairs.qids[:2])


def test_a_trained_document_encoder_builds_the_index(tiny_model) -> None:
    """A document encoder other than the starting one (the paper's trained STAR): the fixed
    index holds its embeddings, not the starting encoder's that the first mining is given."""
    pairs = TrainPairs.from_split(make_data(), "train")
    encoder, doc = copy.deepcopy(tiny_model), tiny_encoder(seed=1)
    miner = AdoreMiner(doc_encoder=doc, num_negatives=K, range_max=None, verbose=False)
    module = RetrievalModule(encoder, InfoNCELoss(), pairs, miner=miner, lr=1e-2)
    assert module.doc_encoder is doc and not any(p.requires_grad for p in doc.parameters())
    f = embed_fn(encoder, progress=False)
    miner.mine(pairs.data, pairs, f, f)  # the run's first mining passes the starting encoder
    want = embed_fn(doc, progress=False)([pairs.data.doc_text(x) for x in pairs.data.corpus])
    np.testing.assert_allclose(miner.index.docs, want, atol=1e-5)
    neg, _ = miner.negatives([0, 3], 0, 0)
    qids = [pairs.qids[0], pairs.qids[3]]
    assert dict(zip(qids, neg)) == brute_force(encoder, doc, pairs, qids)


def test_no_document_encoder_or_another_size_is_refused(tiny_model) -> None:
    with pytest.raises(ConfigError, match=r"miner\.doc_encoder is null"):
        AdoreMiner(num_negatives=K)
    pairs = TrainPairs.from_split(make_data(), "train")
    miner = AdoreMiner(doc_encoder=tiny_encoder(hidden_size=16, seed=1), num_negatives=K)
    with pytest.raises(ConfigError, match="same embedding size"):
        RetrievalModule(copy.deepcopy(tiny_model), InfoNCELoss(), pairs, miner=miner)
