"""A small DDP case shared by the distributed tests: data, miner, module, and one training step.

The same global batch of 8 pairs is trained by 2 gloo processes (4 pairs each, through
Lightning's DDP and hnm's rank-sharded sampler) and by one process; the results must agree.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.types import Phase

GLOBAL_BATCH = 8
K = 2  # explicit negatives per query


def make_case_data() -> RetrievalData:
    """12 queries with one positive each, and query 01 also relevant to document 06.

    Pairs sort as (q00,d00), (q01,d01), (q01,d06), (q02,d02), (q03,d03), …, so in the global
    batch of pairs 0..7 rank 0 holds the query q01 and rank 1 the pair (q06, d06): the
    known-positive mask must cross ranks (global rows 1 and 2, column 7)."""
    topics = ["sort a list", "read a file", "open a socket", "format a date"]
    corpus, queries, train = {}, {}, {}
    for i in range(12):
        phrase = topics[i % 4]
        queries[f"q{i:02d}"] = f"how to {phrase} quickly, case {i}"
        corpus[f"d{i:02d}"] = {"title": f"f{i}", "text": f"def f{i}(x): {phrase} {i} " + "y" * i}
        train[f"q{i:02d}"] = {f"d{i:02d}": 1}
    train["q01"]["d06"] = 1
    return RetrievalData("case", corpus, queries, {"train": train, "test": {}})


class RingMiner:
    """Negatives of pair i: the positives of pairs i+1 and i+3 (mod n), so rank 0's last query
    has rank 1's documents as explicit negatives; teacher scores encode (pair, slot)."""

    num_negatives = K
    phases = (Phase.ATTACH_NEGATIVES,)

    def __init__(self, pairs: TrainPairs) -> None:
        self.pairs = pairs

    def mine(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        return {}

    def negatives(self, pair_idx, epoch, step):
        n = len(self.pairs)
        negs = [[self.pairs.pos_ids[(i + 1) % n], self.pairs.pos_ids[(i + 3) % n]]
                for i in pair_idx]
        teacher = np.array([[10.0 * i + j for j in range(1 + K)] for i in pair_idx], np.float32)
        return negs, teacher

    def needs_refresh(self, step: int) -> bool:
        return False

    def refresh(self, *args: Any) -> dict[str, float]:
        return {}


class FirstPairsSampler:
    """One batch per call: pairs 0..batch_size-1 (a fixed global batch)."""

    def __init__(self, pairs: TrainPairs, batch_size: int, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        return iter([list(range(self.batch_size))])

    def __len__(self) -> int:
        return 1

    def set_epoch(self, epoch: int) -> None:
        pass

    def needs_refresh(self, epoch: int) -> bool:
        return False

    def refresh(self, *args: Any) -> dict[str, float]:
        return {}


def build_module(capture: bool = True):
    """Tiny encoder without dropout (so both runs compute the same function), InfoNCE, miner."""
    from hnm.encoders import tiny_encoder
    from hnm.losses.infonce import InfoNCELoss
    from hnm.modules.retrieval import RetrievalModule

    encoder = tiny_encoder(seed=0, max_seq_length=32)
    for m in encoder.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    data = make_case_data()
    pairs = TrainPairs.from_split(data, "train")

    class Capturing(RetrievalModule):
        def build_context(self, batch):
            ctx = super().build_context(batch)
            self.captured = ctx
            return ctx

    cls = Capturing if capture else RetrievalModule
    module = cls(encoder=encoder, loss=InfoNCELoss(temperature=0.05), pairs=pairs,
                 miner=RingMiner(pairs), lr=1e-3, warmup_ratio=0.0, telemetry_every=0)
    return module, pairs


def summary(module, loss: torch.Tensor) -> dict[str, Any]:
    """What both runs must agree on: the global context, the loss and every gradient."""
    ctx = module.captured
    return {
        "loss": float(loss.detach()),
        "doc_ids": list(ctx.doc_ids), "qids": list(ctx.qids), "pos_ids": list(ctx.pos_ids),
        "pair_idx": ctx.pair_idx.tolist(), "labels": ctx.labels.tolist(),
        "mask": ctx.mask.cpu().clone(), "teacher": ctx.teacher.detach().cpu().clone(),
        "q": ctx.q.detach().cpu().clone(), "d": ctx.d.detach().cpu().clone(),
        "grads": {n: p.grad.detach().cpu().clone() for n, p in module.named_parameters()
                  if p.grad is not None},
    }


def single_process_reference() -> dict[str, Any]:
    """One process, the whole global batch, one forward/backward."""
    from hnm.data.datamodule import PairCollator

    module, pairs = build_module()
    batch = PairCollator(pairs)(list(range(GLOBAL_BATCH)))
    loss = module.loss_fn(module.build_context(batch))
    loss.backward()
    return summary(module, loss)


def ddp_worker(rank: int, world: int, port: int, out: str, variants: list[str]) -> None:
    """One rank: for each variant, a fresh module trained one step by Lightning DDP (gloo);
    the averaged gradients are saved before the optimizer step."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0")
    torch.set_num_threads(1)
    import lightning as L

    from hnm.data.datamodule import RetrievalDataModule
    from hnm.modules import gather

    class Grab(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.loss = outputs["loss"]

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.result = summary(pl_module, torch.tensor(0.0))

    # built before the process group exists (as `hnm train` does): transformers' save/load
    # helpers used by the tiny encoder write files on the main process only once it exists
    built = [build_module() for _ in variants]
    aligned = gather.global_candidate_order
    for variant, (module, pairs) in zip(variants, built):
        if variant == "rank_major":  # the classic bug: concatenate each rank's [pos; neg]
            gather.global_candidate_order = lambda sizes, k: np.arange(sum(sizes) * (1 + k))
        elif variant == "swapped_ranks":  # positives of the two ranks exchanged
            def swapped(sizes, k):
                perm = aligned(sizes, k)
                b0 = sizes[0]
                perm[: sum(sizes)] = np.concatenate([perm[b0:sum(sizes)], perm[:b0]])
                return perm
            gather.global_candidate_order = swapped
        else:
            gather.global_candidate_order = aligned
        dm = RetrievalDataModule(pairs, GLOBAL_BATCH // world, FirstPairsSampler, seed=0)
        grab = Grab()
        trainer = L.Trainer(accelerator="cpu", devices=world, strategy="ddp", max_steps=1,
                            use_distributed_sampler=False, logger=False, callbacks=[grab],
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            gradient_clip_val=None, precision="32-true")
        trainer.fit(module, datamodule=dm)
        result = grab.result
        result["loss"] = float(grab.loss)
        torch.save(result, Path(out) / f"{variant}_rank{rank}.pt")
    gather.global_candidate_order = aligned
