"""Peak memory of one training step: InfoNCE on the whole batch vs GradCache (cached_infonce).

Every figure is measured in a fresh child process (so one measurement's allocations cannot
hide another's): the child loads the encoder and the batch's texts, runs a two-text warm-up
step (so kernels, thread pools and gradient buffers exist), then, unless it is the baseline,
one forward + backward step at the full batch size. The child reports its peak resident set
size (``VmHWM`` from ``/proc/self/status``); a step's figure is its peak minus the baseline
child's peak (same loading and warm-up, no full step).

Texts: the first ``--batch-size`` training pairs of the embedded ``stdlib_code`` dataset
(query = docstring sentence, positive = function source), so the step scores 256 queries
against 256 in-batch documents.

    python scripts/bench_memory.py                      # tiny encoder and MiniLM, batch 256
    python scripts/bench_memory.py --models tiny --batch-size 64

The last line is ``memory_ratio_cached_vs_full=<x>`` for the last model (MiniLM by default):
the cached step's memory over the full step's, both above the baseline. The model is in
training mode, so the two steps' losses differ slightly (different dropout masks per chunk).
On 2 busy CPU cores the MiniLM steps take a few minutes each (the whole run ~10 min).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from hnm.memory import peak_rss_mb

MODES = ("baseline", "full", "cached")



def child(mode: str, model_name: str, batch_size: int, chunk_size: int, max_len: int) -> None:
    """Run one measurement and print a JSON line with the peak RSS (MiB) and step time."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from hnm.data.dataset import TrainPairs
    from hnm.data.stdlib_code import load_stdlib_code
    from hnm.encoders import encode_with_grad, minilm_encoder, tiny_encoder
    from hnm.losses import CachedInfoNCELoss, InfoNCELoss
    from hnm.types import ScoreContext

    model = (minilm_encoder(max_seq_length=max_len) if model_name == "minilm"
             else tiny_encoder(max_seq_length=max_len, seed=0))
    model.train()
    pairs = TrainPairs.from_split(load_stdlib_code(), "train")
    idx = list(range(min(batch_size, len(pairs))))
    queries = [pairs.query(i) for i in idx]
    docs = [pairs.positive(i) for i in idx]
    loss_fn: Any = InfoNCELoss()
    encode: Any = encode_with_grad
    if mode == "cached":
        loss_fn = CachedInfoNCELoss(chunk_size=chunk_size)
        encode = loss_fn.encode

    def step(qs: list[str], ds: list[str]) -> float:
        model.zero_grad(set_to_none=False)
        b = len(qs)
        q, d = encode(model, qs), encode(model, ds)
        ctx = ScoreContext(
            q=q, d=d, doc_ids=[str(i) for i in range(b)], doc_texts=ds,
            qids=[str(i) for i in range(b)], pos_ids=[str(i) for i in range(b)], queries=qs,
            pair_idx=torch.arange(b), labels=torch.arange(b),
            mask=torch.zeros(b, b, dtype=torch.bool), weights=torch.ones(b))
        loss = loss_fn(ctx)
        loss.backward()
        return float(loss.detach())

    step(queries[:2], docs[:2])  # warm-up: kernels, allocator pools, .grad buffers
    t0 = time.perf_counter()
    loss = step(queries, docs) if mode != "baseline" else float("nan")
    seconds = time.perf_counter() - t0
    print(json.dumps({"peak_mb": peak_rss_mb(), "seconds": seconds, "loss": loss,
                      "batch": len(queries)}))


def measure(mode: str, model: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, "--models", model,
           "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size),
           "--max-seq-length", str(args.max_seq_length)]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,minilm",
                        help="comma-separated: tiny, minilm (the ratio line uses the last)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.models, args.batch_size, args.chunk_size, args.max_seq_length)
        return
    ratio = float("nan")
    for model in args.models.split(","):
        res = {mode: measure(mode, model, args) for mode in MODES}
        base = res["baseline"]["peak_mb"]
        full = res["full"]["peak_mb"] - base
        cached = res["cached"]["peak_mb"] - base
        ratio = cached / full if full > 0 else float("nan")
        tag = f"model={model} batch={args.batch_size}"
        print(f"{tag} baseline_peak_rss_mb={base:.0f}")
        print(f"{tag} infonce_step_mb={full:.0f} (step {res['full']['seconds']:.1f}s, "
              f"loss {res['full']['loss']:.4f})")
        print(f"{tag} cached_infonce_chunk{args.chunk_size}_step_mb={cached:.0f} "
              f"(step {res['cached']['seconds']:.1f}s, loss {res['cached']['loss']:.4f})")
        print(f"{tag} ratio_cached_vs_full={ratio:.3f}")
    print(f"memory_ratio_cached_vs_full={ratio:.3f}")


if __name__ == "__main__":
    main()
