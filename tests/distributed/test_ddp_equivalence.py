"""Two gloo processes under Lightning DDP == one process on the same global batch."""

from __future__ import annotations

import pytest
import torch

from tests.distributed.collectives_case import free_port
from tests.distributed.ddp_case import GLOBAL_BATCH, K, ddp_worker, single_process_reference

pytestmark = pytest.mark.slow
VARIANTS = ["aligned", "rank_major", "swapped_ranks"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(ddp_worker, args=(2, free_port(), str(out), VARIANTS), nprocs=2, join=True)
    ddp = {v: [torch.load(out / f"{v}_rank{r}.pt", weights_only=False) for r in range(2)]
           for v in VARIANTS}
    return ddp, single_process_reference()


def _max_grad_diff(a: dict, b: dict) -> float:
    """Largest gradient difference, relative to the largest gradient of the model (parameters
    whose true gradient is zero, such as attention key biases, hold only rounding noise)."""
    assert a.keys() == b.keys()
    scale = max(float(g.abs().max()) for g in b.values())
    return max(float((a[n] - b[n]).abs().max()) for n in a) / scale


def test_global_context_matches_single_process(runs) -> None:
    ddp, ref = runs
    for rank in range(2):
        got = ddp["aligned"][rank]
        assert got["qids"] == ref["qids"] and got["pair_idx"] == list(range(GLOBAL_BATCH))
        assert got["doc_ids"] == ref["doc_ids"]
        assert len(got["doc_ids"]) == GLOBAL_BATCH * (1 + K)
        assert got["labels"] == list(range(GLOBAL_BATCH))
        assert torch.equal(got["mask"], ref["mask"])
        assert bool(ref["mask"][1, 7]) and bool(ref["mask"][2, 7])  # planted, across ranks
        assert torch.allclose(got["teacher"], ref["teacher"], equal_nan=True)
        torch.testing.assert_close(got["q"], ref["q"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["d"], ref["d"], rtol=1e-5, atol=1e-6)


def test_loss_and_gradients_match_single_process(runs) -> None:
    ddp, ref = runs
    for rank in range(2):
        got = ddp["aligned"][rank]
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)
        assert _max_grad_diff(got["grads"], ref["grads"]) < 1e-5
    # DDP leaves the same averaged gradient on both ranks
    assert _max_grad_diff(ddp["aligned"][0]["grads"], ddp["aligned"][1]["grads"]) < 1e-6


@pytest.mark.parametrize("variant", ["rank_major", "swapped_ranks"])
def test_misaligned_gather_is_detected(runs, variant: str) -> None:
    ddp, ref = runs
    got = ddp[variant][0]
    assert got["doc_ids"] != ref["doc_ids"]
    assert abs(got["loss"] - ref["loss"]) > 1e-3 * abs(ref["loss"])
    assert _max_grad_diff(got["grads"], ref["grads"]) > 1e-2
