"""Step time of AdamW's implementations on MiniLM-sized parameters (CPU by default).

``RetrievalModule.configure_optimizers`` uses the fused AdamW kernel, except under mixed
precision with gradient clipping (``trainer=gpu``/``ddp``), where Lightning refuses to clip a
fused optimizer's gradients and the ``foreach`` implementation is used instead. This measures
what that costs: the parameters of all-MiniLM-L6-v2 (22.7M, the shapes of a 6-layer, 384-wide
BERT with its 30,522-token vocabulary; no download), split into the module's two groups
(weight decay on matrices only), random gradients, then ``clip_grad_norm_(1.0)`` and
``optimizer.step()`` as Lightning runs them. The implementations alternate step by step, in
a rotating order (so they share the background load); each reports its median step, and the
last line is ``foreach_over_fused=<x> single_over_fused=<y>``, ratios of medians from the
same run.

    python scripts/bench_optimizer.py                 # ~1.5 min on 2 CPU cores
    python scripts/bench_optimizer.py --steps 50 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

VARIANTS = {"fused": {"fused": True}, "foreach": {"foreach": True},
            "single": {"foreach": False}}  # single: the per-tensor loop


def minilm_shapes(vocab: int = 30522, hidden: int = 384, layers: int = 6,
                  ffn: int = 1536, positions: int = 512) -> list[tuple[int, ...]]:
    """Parameter shapes of a BERT encoder without pooler (all-MiniLM-L6-v2 by default)."""
    shapes: list[tuple[int, ...]] = [(vocab, hidden), (positions, hidden), (2, hidden),
                                     (hidden,), (hidden,)]
    for _ in range(layers):
        for _ in range(4):  # query, key, value, attention output
            shapes += [(hidden, hidden), (hidden,)]
        shapes += [(hidden,), (hidden,)]            # attention LayerNorm
        shapes += [(ffn, hidden), (ffn,), (hidden, ffn), (hidden,)]
        shapes += [(hidden,), (hidden,)]            # output LayerNorm
    return shapes


def make_optimizer(name: str, device: str, seed: int = 0) -> tuple[torch.optim.Optimizer, list]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(device) * 0.02)
              for s in minilm_shapes()]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(device) * 1e-3
    opt = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.01},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ], lr=2e-5, **VARIANTS[name])
    return opt, params


def time_step(opt: torch.optim.Optimizer, params: list, device: str) -> float:
    """Seconds for one clipped optimizer step."""
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per implementation")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    built = {name: make_optimizer(name, args.device) for name in VARIANTS}
    n = sum(p.numel() for p in built["fused"][1])
    print(f"AdamW on {n / 1e6:.1f}M MiniLM-shaped parameters, {args.device}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; clip_grad_norm_ + step")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for name in names:
        time_step(*built[name], args.device)  # warm-up: allocates the moment buffers
    for i in range(args.steps):
        for name in names[i % len(names):] + names[:i % len(names)]:
            times[name].append(time_step(*built[name], args.device))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:<8} median {med[name] * 1e3:8.1f} ms  (min {min(t) * 1e3:.1f}, "
              f"max {max(t) * 1e3:.1f}; {len(t)} steps)")
    print(f"foreach_over_fused={med['foreach'] / med['fused']:.2f} "
          f"single_over_fused={med['single'] / med['fused']:.2f}")


if __name__ == "__main__":
    main()
