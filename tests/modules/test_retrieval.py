"""The training step's candidate layout, masks and teacher placement."""

from __future__ import annotations

import numpy as np
import torch

from hnm.data.dataset import TrainPairs
from hnm.losses.infonce import InfoNCELoss
from hnm.modules.batch import known_positive_mask, teacher_matrix
from hnm.modules.retrieval import RetrievalModule
from hnm.types import Phase
from tests.conftest import make_data


class FixedMiner:
    """Returns the same planted negatives (with teacher scores) for every pair."""

    num_negatives = 2
    phases = (Phase.ATTACH_NEGATIVES,)

    def __init__(self, negs: list[str]):
        self.negs = negs

    def mine(self, *a, **k):
        return {}

    def negatives(self, pair_idx, epoch, step):
        n = len(pair_idx)
        teacher = np.tile(np.array([[0.9, 0.2, 0.1]], dtype=np.float32), (n, 1))
        return [list(self.negs) for _ in range(n)], teacher

    def needs_refresh(self, step):
        return False

    def refresh(self, *a):
        return {}


def _batch(pairs: TrainPairs, idx: list[int]) -> dict:
    from hnm.data.datamodule import PairCollator

    return PairCollator(pairs)(idx)


def test_context_layout_masks_duplicates_and_known_positives(tiny_model) -> None:
    data = make_data()
    pairs = TrainPairs.from_split(data, "train")
    # a planted negative that is the positive of pair 0: must be masked for query 0 only
    miner = FixedMiner([pairs.pos_ids[0], "d3_5"])
    module = RetrievalModule(tiny_model, InfoNCELoss(), pairs, miner=miner)
    idx = [0, 1, 2]
    ctx = module.build_context(_batch(pairs, idx))
    b, k = 3, 2
    assert ctx.d.shape[0] == b * (1 + k)
    assert ctx.doc_ids[:b] == [pairs.pos_ids[i] for i in idx]
    assert ctx.doc_ids[b:b + k] == [pairs.pos_ids[0], "d3_5"]
    masked = {(i, j) for i, j in zip(*torch.nonzero(ctx.mask, as_tuple=True))}
    # query 0's positive appears as a mined negative of every query: masked for query 0
    for j in (b, b + 2, b + 4):
        assert (0, j) in {(int(a), int(c)) for a, c in masked}
    assert not ctx.mask[1, b].item() and not ctx.mask[2, b].item()
    # teacher scores sit on the positive's column and the query's own negatives
    assert ctx.teacher is not None
    assert torch.isclose(ctx.teacher[1, 1], torch.tensor(0.9))
    assert torch.isclose(ctx.teacher[1, b + 2], torch.tensor(0.2))
    assert torch.isnan(ctx.teacher[1, b]).item()
    loss = module.loss_fn(ctx)
    loss.backward()
    assert any(p.grad is not None for p in tiny_model.parameters())
    tiny_model.zero_grad()


def test_teacher_matrix_brute_force() -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    out = teacher_matrix(t, 4, 8, torch.device("cpu"))
    for i in range(4):
        for j in range(12):
            if j == i:
                expect = t[i, 0]
            elif 4 + 2 * i <= j < 4 + 2 * i + 2:
                expect = t[i, 1 + j - 4 - 2 * i]
            else:
                assert torch.isnan(out[i, j])
                continue
            assert out[i, j] == expect


def test_known_positive_mask_never_masks_the_label(tiny_model) -> None:
    data = make_data()
    pairs = TrainPairs.from_split(data, "train")
    module = RetrievalModule(tiny_model, InfoNCELoss(), pairs)
    ctx = module.build_context(_batch(pairs, [0, 0, 1]))  # the same pair twice
    mask = known_positive_mask(ctx)
    assert mask[0, 1] and mask[1, 0]  # the duplicate positive is not a negative
    assert not mask[0, 0] and not mask[1, 1] and not mask[2, 2]
