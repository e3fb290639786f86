"""Global candidate layout, grid placement and gradient scaling, against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hnm.modules.gather import _place, _ScaleGrad, gather_context, global_candidate_order
from hnm.types import ScoreContext


def _brute_order(sizes: list[int], k: int) -> list[int]:
    """Walk the rank-major concatenation and pick positives first, then negatives."""
    rank_major = []  # (kind, rank, local index)
    for r, b in enumerate(sizes):
        rank_major += [("pos", r, i) for i in range(b)] + [("neg", r, j) for j in range(b * k)]
    wanted = [("pos", r, i) for r, b in enumerate(sizes) for i in range(b)]
    wanted += [("neg", r, j) for r, b in enumerate(sizes) for j in range(b * k)]
    return [rank_major.index(w) for w in wanted]


@pytest.mark.parametrize(("sizes", "k"), [([4, 4], 2), ([3, 2], 1), ([2, 2, 2], 0),
                                          ([1, 3, 2, 2], 3), ([5], 2)])
def test_global_candidate_order_matches_brute_force(sizes, k) -> None:
    assert global_candidate_order(sizes, k).tolist() == _brute_order(sizes, k)


def test_each_query_finds_its_positive_and_own_negatives() -> None:
    sizes, k = [3, 2, 4], 2
    ids = [f"r{r}:{kind}{i}" for r, b in enumerate(sizes)
           for kind, n in (("p", b), ("n", b * k)) for i in range(n)]
    glob = [ids[i] for i in global_candidate_order(sizes, k)]
    total = sum(sizes)
    row = 0
    for r, b in enumerate(sizes):
        for i in range(b):
            assert glob[row] == f"r{r}:p{i}"  # label column == global query index
            own = glob[total + row * k: total + (row + 1) * k]
            assert own == [f"r{r}:n{i * k + j}" for j in range(k)]
            row += 1


def test_place_puts_local_blocks_on_the_global_grid() -> None:
    sizes, k = [2, 1], 1
    n_cols = [s * (1 + k) for s in sizes]  # rank 0: [p0, p1, n0, n1]; rank 1: [p0, n0]
    perm = global_candidate_order(sizes, k)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    blocks = [torch.arange(8.0).view(2, 4), torch.tensor([[70.0, 80.0]])]
    out = _place(blocks, sizes, n_cols, inverse, float("nan"), torch.float32,
                 torch.device("cpu"))
    nan = float("nan")
    # global columns: [p(r0,0), p(r0,1), p(r1,0), n(r0,0), n(r0,1), n(r1,0)]
    expected = torch.tensor([[0.0, 1.0, nan, 2.0, 3.0, nan],
                             [4.0, 5.0, nan, 6.0, 7.0, nan],
                             [nan, nan, 70.0, nan, nan, 80.0]])
    torch.testing.assert_close(out, expected, equal_nan=True)
    skipped = _place([None, torch.tensor([[True, False]])], sizes, n_cols, inverse, False,
                     torch.bool, torch.device("cpu"))
    assert skipped.nonzero().tolist() == [[2, 2]]


def test_scale_grad_is_identity_forward_and_scales_backward() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    y = _ScaleGrad.apply(x, 4.0)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, 4.0))


def test_one_process_context_is_returned_unchanged() -> None:
    q, d = torch.randn(2, 4), torch.randn(6, 4)
    ctx = ScoreContext(q=q, d=d, doc_ids=list("abcdef"), doc_texts=[""] * 6, qids=["x", "y"],
                       pos_ids=["a", "b"], queries=["", ""], pair_idx=torch.arange(2),
                       labels=torch.arange(2), mask=torch.zeros(2, 6, dtype=torch.bool),
                       weights=torch.ones(2))
    assert gather_context(ctx) is ctx
