"""gather_context with unequal shards, sharded embedding and broadcast on 2 gloo processes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnm.losses.infonce import InfoNCELoss
from hnm.modules.batch import teacher_matrix
from hnm.types import ScoreContext
from tests.distributed.collectives_case import (
    SIZES,
    K,
    embed_texts,
    free_port,
    global_tensors,
    texts,
    worker,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("collectives")
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _single_process() -> tuple[float, torch.Tensor, torch.Tensor, ScoreContext]:
    t = global_tensors()
    b = sum(SIZES)
    q = t["q"].clone().requires_grad_(True)
    d = torch.cat([t["p"], t["n"]]).clone().requires_grad_(True)
    ids = [f"p{i}" for i in range(b)] + [f"n{j}" for j in range(b * K)]
    ctx = ScoreContext(q=q, d=d, doc_ids=ids, doc_texts=ids, qids=[f"q{i}" for i in range(b)],
                       pos_ids=ids[:b], queries=[""] * b, pair_idx=torch.arange(b),
                       labels=torch.arange(b), mask=torch.zeros(b, b * (1 + K), dtype=torch.bool),
                       weights=torch.ones(b),
                       teacher=teacher_matrix(t["teacher"], b, b * K, torch.device("cpu")))
    loss = InfoNCELoss(temperature=0.1)(ctx)
    loss.backward()
    return float(loss), q.grad, d.grad, ctx


def test_unequal_shards_give_the_single_process_loss_and_scaled_gradients(results) -> None:
    loss, q_grad, d_grad, ref = _single_process()
    b = sum(SIZES)
    for rank, got in enumerate(results):
        assert got["loss"] == pytest.approx(loss, rel=1e-6)
        assert got["ids"] == ref.doc_ids and got["labels"] == list(range(b))
        assert got["pair_idx"] == list(range(b))
        torch.testing.assert_close(got["teacher"], ref.teacher, equal_nan=True)
        lo, n = sum(SIZES[:rank]), SIZES[rank]
        # the local gradient is world_size x the true one; DDP's average divides it back
        torch.testing.assert_close(got["q_grad"], 2 * q_grad[lo:lo + n])
        local_d = torch.cat([d_grad[lo:lo + n], d_grad[b + lo * K:b + (lo + n) * K]])
        torch.testing.assert_close(got["d_grad"], 2 * local_d)


def test_sharded_embedding_splits_the_work_and_returns_everything(results) -> None:
    full = embed_texts(texts())
    for got in results:
        np.testing.assert_array_equal(got["emb"], full)
        assert got["shared"] == {"from": 0}
    seen = [got["seen"] for got in results]
    assert seen[0] + seen[1] == texts() and abs(len(seen[0]) - len(seen[1])) <= 1
