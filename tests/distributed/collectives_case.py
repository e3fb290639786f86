"""Worker for the plain torch.distributed test: gather_context on unequal shards, sharded
embedding and broadcast, without Lightning (fast to spawn)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SIZES, K, DIM = [3, 2], 2, 6


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = sum(SIZES)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s, generator=g), dim=-1)  # noqa: E731
    return {"q": unit(b, DIM), "p": unit(b, DIM), "n": unit(b * K, DIM),
            "teacher": torch.randn(b, 1 + K, generator=g)}


def texts() -> list[str]:
    return [f"text number {i}" + "!" * (i % 4) for i in range(11)]


def embed_texts(items) -> np.ndarray:
    return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in items], np.float32)


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist

    from hnm.dist import broadcast_object, sharded_embed_fn
    from hnm.losses.infonce import InfoNCELoss
    from hnm.modules.gather import gather_context
    from hnm.types import ScoreContext

    dist.init_process_group("gloo", rank=rank, world_size=world)
    t = global_tensors()
    lo = sum(SIZES[:rank])
    b = SIZES[rank]
    rows = slice(lo, lo + b)
    q = t["q"][rows].clone().requires_grad_(True)
    d = torch.cat([t["p"][rows], t["n"][lo * K:(lo + b) * K]]).clone().requires_grad_(True)
    teacher = torch.full((b, b * (1 + K)), float("nan"))
    for i in range(b):
        teacher[i, i] = t["teacher"][lo + i, 0]
        teacher[i, b + i * K: b + (i + 1) * K] = t["teacher"][lo + i, 1:]
    ids = [f"p{lo + i}" for i in range(b)] + [f"n{lo * K + j}" for j in range(b * K)]
    ctx = ScoreContext(q=q, d=d, doc_ids=ids, doc_texts=ids, qids=[f"q{lo + i}" for i in range(b)],
                       pos_ids=ids[:b], queries=[""] * b, pair_idx=torch.arange(lo, lo + b),
                       labels=torch.arange(b), mask=torch.zeros(b, b * (1 + K), dtype=torch.bool),
                       weights=torch.ones(b), teacher=teacher)
    glob = gather_context(ctx)
    loss = InfoNCELoss(temperature=0.1)(glob)
    loss.backward()

    seen: list[str] = []

    def recording(items):
        seen.extend(items)
        return embed_texts(items)

    emb = sharded_embed_fn(recording)(texts())
    shared = broadcast_object({"from": rank} if rank == 0 else None)
    torch.save({"loss": float(loss), "q_grad": q.grad, "d_grad": d.grad, "ids": glob.doc_ids,
                "teacher": glob.teacher, "labels": glob.labels.tolist(),
                "pair_idx": glob.pair_idx.tolist(), "emb": emb, "seen": seen,
                "shared": shared}, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()
