"""Training throughput of hnm against sentence-transformers, and the cost of each strategy.

1. **hnm vs sentence-transformers**, in one process, on the same encoder (all-MiniLM-L6-v2,
   ``max_seq_length`` 128), data (``stdlib_code`` training pairs as ``hnm train`` selects
   them), batch size (32), the *same batches in the same order*, fp32, and the same number of
   steps (10 timed after 2 warm-up steps). hnm runs the way ``hnm train`` does:
   ``RetrievalModule`` with in-batch ``infonce`` and no sampler, under a Lightning Trainer
   built from ``conf/trainer/cpu.yaml`` (``gpu.yaml`` at fp32 on CUDA) and ``conf/module``'s
   defaults. sentence-transformers runs ``SentenceTransformerTrainer`` with
   ``MultipleNegativesRankingLoss`` (scale 20 = temperature 0.05). Both are timed by a
   trainer callback at the end of every optimizer step, so batch fetching, tokenisation,
   forward, backward and the optimizer step all count. The two alternate ``--repeats``
   times (so they share the background load); each system's best median step time gives
   its samples per second (batch size / step time).
2. **Negative strategies**: every ``conf/negatives/*.yaml`` is added to the hnm run in turn;
   the time spent inside it (its call on the batch and its ``on_step_end``) divided by the
   rest of the same run's median step is its per-step overhead (target: 5%), a ratio taken
   under one background load. The run's median step against the baseline's is printed too
   (an A/B figure, noisy under load). Strategies that run an encoder of their own every
   step (GIST's guide, MoCo's momentum encoder) are labelled ``encoder``: their cost is that
   model's forward pass, outside the in-batch target.
3. **Samplers** (``conf/sampler/*.yaml``): building the epoch's batches plus the refresh
   (NGAME: embedding and re-clustering with the current encoder) on the default 1,000 pairs,
   divided by an epoch of training (steps per epoch x the fastest step time measured, so the
   figure errs high under load): the amortised overhead (target: 10%). Samplers that refresh
   only once before training (TAS-Balanced: clustering and mining) are labelled ``setup``, a
   one-time cost like mining's.
4. Both systems train with dropout on (``hnm train``'s default, ``module.dropout=true``, and
   the HF trainer's); ``--no-dropout`` trains hnm's encoder in eval mode instead.
5. **Precision** (``--precision``, instead of 1–3): hnm's whole training step (the same loop,
   model, batches and steps as in 1) in ``32-true`` against ``bf16-mixed`` (bf16 autocast; the
   fused AdamW step, its gradients clipped by the module) and against ``bf16-mixed`` with the
   ``foreach`` AdamW it stepped before the module clipped them itself (``bf16_foreach``),
   interleaved ``--repeats`` times, each run seeded alike (the same dropout masks). Each gets
   its best median step, in wall time and in this process's CPU time (which other jobs on the
   machine disturb less); the losses of the timed steps are compared too (same batches, so they
   differ by bf16's rounding only). Where the CPU has no bf16 hardware (AMX-BF16 or
   AVX512-BF16) it says so and times fp32 only. The CPU and the load average before and after
   are printed.

    python scripts/bench_train.py           # MiniLM: several minutes on 2 CPU cores
    python scripts/bench_train.py --quick   # tiny random encoder, few steps: a smoke run
    python scripts/bench_train.py --precision --repeats 2   # fp32 vs bf16-mixed, ~6 min

The last line is ``speedup_vs_st=<x> max_strategy_overhead=<y>``: x is hnm's throughput over
sentence-transformers', y the largest overhead among in-batch strategies and refreshing
samplers (the ones with a target). With ``--precision`` it is ``bf16_speedup=<x>
foreach_over_fused=<y> max_loss_diff=<z>``: fp32's best median step over bf16-mixed's, the
old foreach step over the fused one (both bf16-mixed), and the largest difference between the
two precisions' losses at the same step.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from hnm.cli import config_dir

warnings.filterwarnings("ignore")
CONF = Path(config_dir())


class StepClock:
    """Wall-clock time at the end of every optimizer step (Lightning and HF callbacks), and
    each step's loss where the trainer reports it."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.cpu_ends: list[float] = []  # this process's CPU time (all threads)
        self.losses: list[float] = []

    def step_times(self, warmup: int, cpu: bool = False) -> list[float]:
        ends = self.cpu_ends if cpu else self.ends
        return [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])]


class LightningClock(L.Callback):
    def __init__(self, clock: StepClock, dropout: bool = False) -> None:
        self.clock, self.dropout = clock, dropout

    def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, *args: Any) -> None:
        self.clock.ends.append(time.perf_counter())
        self.clock.cpu_ends.append(time.process_time())
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.clock.losses.append(float(loss))


class Timed:
    """Wraps a negative strategy and accumulates the time spent in it: its in-batch call and
    the other phases it declares (``phases`` and their hooks are the inner strategy's)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0
        self.phases = tuple(inner.phases)
        for name in ("after_loss", "on_optimizer_step", "on_step_end", "models", "bind"):
            hook = getattr(inner, name, None)
            if callable(hook):
                setattr(self, name, self._timed(hook))

    def __call__(self, ctx: Any) -> Any:
        t = time.perf_counter()
        out = self.inner(ctx)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out

    def _timed(self, hook: Any) -> Any:
        def timed(*args: Any) -> Any:
            t = time.perf_counter()
            out = hook(*args)
            self.seconds += time.perf_counter() - t
            return out

        return timed

    def frozen_models(self) -> list[Any]:
        inner = getattr(self.inner, "frozen_models", None)
        return list(inner()) if inner is not None else []


def config(args: argparse.Namespace, extra: list[str] = (), precision: str = "32-true") -> Any:
    over = [f"encoder={args.encoder}", "logger=none", f"batch_size={args.batch_size}",
            f"data.max_seq_length={args.max_seq_length}", f"data.max_train_pairs={args.pairs}",
            f"trainer={'gpu' if torch.cuda.is_available() else 'cpu'}",
            f"trainer.precision={precision}", *extra]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=over)


def run_hnm(cfg: Any, pairs: Any, steps: int, strategies: list[Any] = (),
            dropout: bool = False) -> tuple[StepClock, list[Timed]]:
    """``hnm train``'s training loop for ``steps`` steps; its clock and timed strategies."""
    from hnm.data.datamodule import RetrievalDataModule
    from hnm.modules.retrieval import RetrievalModule

    timed = [Timed(s) for s in strategies]
    module = RetrievalModule(encoder=instantiate(cfg.encoder), loss=instantiate(cfg.loss),
                             pairs=pairs, negatives=timed, **{**cfg.module, "dropout": dropout})
    clock = StepClock()
    trainer = instantiate(cfg.trainer, _partial_=True)(
        logger=False, callbacks=[LightningClock(clock, dropout)], enable_checkpointing=False,
        enable_progress_bar=False, max_steps=steps, default_root_dir=tempfile.mkdtemp())
    trainer.fit(module, datamodule=RetrievalDataModule(pairs, cfg.batch_size, seed=cfg.seed))
    return clock, timed


def run_st(cfg: Any, pairs: Any, steps: int) -> StepClock:
    """The same batches through SentenceTransformerTrainer + MultipleNegativesRankingLoss."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from torch.utils.data import BatchSampler, SequentialSampler
    from transformers import TrainerCallback

    from hnm.samplers.random import RandomBatchSampler

    order = [i for b in RandomBatchSampler(pairs, cfg.batch_size, seed=cfg.seed).batches()
             for i in b]  # hnm's epoch-0 batches, in order
    data = Dataset.from_dict({"anchor": [pairs.query(i) for i in order],
                              "positive": [pairs.positive(i) for i in order]})
    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, *a: Any, **k: Any) -> None:
            clock.ends.append(time.perf_counter())

    class InOrder(SentenceTransformerTrainer):
        def get_batch_sampler(self, dataset, batch_size, drop_last, *a, **k):
            return BatchSampler(SequentialSampler(dataset), batch_size, drop_last)

    model = instantiate(cfg.encoder)
    targs = SentenceTransformerTrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=cfg.batch_size,
        max_steps=steps, learning_rate=cfg.module.lr, warmup_steps=float(cfg.module.warmup_ratio),
        weight_decay=cfg.module.weight_decay, max_grad_norm=1.0, logging_steps=10**6,
        save_strategy="no", report_to="none", disable_tqdm=True, seed=cfg.seed,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available())
    InOrder(model=model, args=targs, train_dataset=data, callbacks=[Clock()],
            loss=MultipleNegativesRankingLoss(model, scale=1.0 / cfg.loss.temperature)).train()
    return clock


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def compare_precisions(args: argparse.Namespace, pairs: Any) -> None:
    """Part 5: hnm's step in 32-true, bf16-mixed (fused AdamW) and bf16-mixed with foreach."""
    import contextlib
    from unittest import mock

    from hnm.precision import bf16_support

    device = "cuda" if torch.cuda.is_available() else "cpu"
    support = bf16_support(device)
    load = loadavg()
    print(f"{'GPU' if device == 'cuda' else 'CPU'}: {support.what}; bf16 hardware: "
          f"{'yes' if support.ok else 'no'}; load average {load} (uptime)", flush=True)
    variants = {"fp32": "32-true", "bf16": "bf16-mixed", "bf16_foreach": "bf16-mixed"}
    if not support.ok:
        print("no bf16 hardware here: bf16-mixed is not timed (fp32 only)")
        variants = {"fp32": "32-true"}
    n = args.warmup + args.steps
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    losses: dict[str, list[float]] = {}
    for rep in range(args.repeats):
        names = list(variants) if rep % 2 == 0 else list(variants)[::-1]
        for name in names:
            cfg = config(args, precision=variants[name])
            L.seed_everything(cfg.seed, verbose=False)  # the same dropout masks in every run
            # bf16_foreach: the AdamW implementation hnm stepped under bf16-mixed before
            patch = (mock.patch("hnm.modules.retrieval.adamw_kernel",
                                lambda *a, **k: (None, True)) if name == "bf16_foreach"
                     else contextlib.nullcontext())
            with patch:
                clock = run_hnm(cfg, pairs, n, dropout=args.dropout)[0]
            times = clock.step_times(args.warmup)
            med = statistics.median(times)
            cpu = statistics.median(clock.step_times(args.warmup, cpu=True))
            best[name] = min(best.get(name, med), med)
            best_cpu[name] = min(best_cpu.get(name, cpu), cpu)
            losses[name] = clock.losses[args.warmup:]
            print(f"{name:<13} run {rep + 1}: {args.batch_size / med:6.2f} samples/s (median "
                  f"step {med:.3f} s, CPU {cpu:.3f} s, over {len(times)}; mean loss "
                  f"{statistics.mean(losses[name]):.4f})", flush=True)
            gc.collect()
    print(f"\n{'variant':<13} {'precision':<11} {'optimizer':<9} {'step s':>7} {'samples/s':>9} "
          f"{'x fp32':>7} {'CPU s':>7} {'x fp32':>7}")
    for name, prec in variants.items():
        opt = "foreach" if name == "bf16_foreach" else "fused"
        print(f"{name:<13} {prec:<11} {opt:<9} {best[name]:>7.3f} "
              f"{args.batch_size / best[name]:>9.2f} {best['fp32'] / best[name]:>7.2f} "
              f"{best_cpu[name]:>7.3f} {best_cpu['fp32'] / best_cpu[name]:>7.2f}")
    print("step s: wall time of a step (best median over the runs); CPU s: this process's CPU "
          "time per step (all threads), less sensitive to other jobs on the machine")
    print(f"{'GPU' if device == 'cuda' else 'CPU'}: {support.what}; load average before {load}, "
          f"after {loadavg()}")
    if "bf16" not in best:
        print("bf16_speedup=nan foreach_over_fused=nan max_loss_diff=nan")
        return
    diff = max(abs(a - b) for a, b in zip(losses["fp32"], losses["bf16"]))
    print(f"losses of the timed steps, fp32 vs bf16-mixed: largest difference {diff:.4f}")
    print(f"bf16 CPU-time ratio: {best_cpu['fp32'] / best_cpu['bf16']:.3f}")
    print(f"bf16_speedup={best['fp32'] / best['bf16']:.3f} "
          f"foreach_over_fused={best['bf16_foreach'] / best['bf16']:.3f} max_loss_diff={diff:.4f}")


def holds_model(strategy: Any) -> bool:
    """Whether a strategy keeps an encoder of its own (directly or in a list)."""
    from sentence_transformers import SentenceTransformer

    for value in vars(strategy).values():
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, SentenceTransformer) for v in items):
            return True
    return False


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny encoder, few steps (smoke)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--strategy-steps", type=int, default=3, help="timed steps per strategy")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=128)
    p.add_argument("--pairs", type=int, default=1000, help="training pairs (NGAME's epoch)")
    p.add_argument("--no-dropout", dest="dropout", action="store_false",
                   help="train hnm's encoder in eval mode (module.dropout=false); by default "
                        "it trains with dropout on, as `hnm train` and the HF trainer do")
    p.add_argument("--speed-only", action="store_true",
                   help="only the hnm / sentence-transformers comparison")
    p.add_argument("--precision", action="store_true",
                   help="only hnm in 32-true vs bf16-mixed (fused and foreach AdamW)")
    p.add_argument("--repeats", type=int, default=2,
                   help="interleaved hnm / sentence-transformers runs; the best median counts")
    args = p.parse_args()
    args.encoder = "tiny" if args.quick else "minilm"
    if args.quick:
        args.steps, args.warmup, args.strategy_steps = 3, 1, 2
        args.batch_size, args.max_seq_length, args.pairs, args.repeats = 16, 64, 256, 1
    from hnm.data.dataset import TrainPairs
    from hnm.encoders.embed import embed_fn
    from hnm.train import build_strategies, load_data

    L.seed_everything(42, verbose=False)
    cfg = config(args)
    pairs = TrainPairs.from_split(load_data(cfg), cfg.data.train_split, args.pairs, cfg.seed)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {device}, {torch.get_num_threads()} threads; encoder={args.encoder}, "
          f"batch {args.batch_size}, max_seq_length {args.max_seq_length}, {len(pairs)} pairs; "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    if args.precision:
        compare_precisions(args, pairs)
        return

    n = args.warmup + args.steps
    rows: dict[str, float] = {}
    for rep in range(args.repeats):  # interleaved, so both see the same background load
        for name, run in (("hnm", lambda: run_hnm(cfg, pairs, n, dropout=args.dropout)[0]),
                          ("sentence-transformers", lambda: run_st(cfg, pairs, n))):
            times = run().step_times(args.warmup)
            med = statistics.median(times)
            rows[name] = min(rows.get(name, med), med)
            print(f"{name:<22} run {rep + 1}: {args.batch_size / med:7.2f} samples/s (median "
                  f"step {med:.3f} s; mean {statistics.mean(times):.3f} s over {len(times)})")
    base = rows["hnm"]
    speedup = rows["sentence-transformers"] / base
    print(f"hnm / sentence-transformers throughput (best median step of each): {speedup:.3f}")
    if args.speed_only:
        print(f"speedup_vs_st={speedup:.3f} max_strategy_overhead=nan")
        return

    results: list[tuple[str, str, float, float, str]] = []
    refs: list[float] = []
    for name in options("negatives"):
        try:
            scfg = config(args, [f"+negatives={name}"])
            strategies = build_strategies(scfg)
            m = args.warmup + args.strategy_steps
            clock, timed = run_hnm(scfg, pairs, m, strategies)
            own = sum(t.seconds for t in timed) / max(1, timed[0].calls)
            step = statistics.median(clock.step_times(args.warmup))
            kind = "encoder" if any(holds_model(t.inner) for t in timed) else "in-batch"
            ref = max(step - own, 1e-9)  # this run's step without the strategy, same load
            refs.append(ref)
            results.append((name, kind, own / ref, step / base - 1, "per step"))
        except Exception as err:  # noqa: BLE001 - other strategies still get measured
            print(f"negatives={name}: skipped ({type(err).__name__}: {err})")
        gc.collect()

    encoder = instantiate(cfg.encoder)
    embed = embed_fn(encoder, cfg.eval.batch_size, progress=False)
    step_ref = min([base, *refs])  # the least loaded step time seen: a conservative epoch
    for name in options("sampler"):
        try:
            factory = instantiate(config(args, [f"+sampler={name}"]).sampler)
            sampler = factory(pairs=pairs, batch_size=cfg.batch_size, seed=cfg.seed,
                              drop_last=False)
            sampler.set_epoch(0)
            t = time.perf_counter()
            refreshed = bool(sampler.needs_refresh(0))
            if refreshed:
                sampler.refresh(embed, embed)
            refresh = time.perf_counter() - t
            t = time.perf_counter()
            n_batches = len(list(sampler))
            compose_s = time.perf_counter() - t
            epoch = max(1, n_batches) * step_ref
            sampler.set_epoch(1)
            kind = "setup" if refreshed and not sampler.needs_refresh(1) else "sampler"
            results.append((name, kind, (refresh + compose_s) / epoch, float("nan"),
                            f"{'once / one' if kind == 'setup' else 'per'} epoch (refresh "
                            f"{refresh:.1f} s, batches {compose_s:.3f} s, {n_batches} steps)"))
        except Exception as err:  # noqa: BLE001
            print(f"sampler={name}: skipped ({type(err).__name__}: {err})")

    target = {"in-batch": 0.05, "sampler": 0.10}
    print(f"\n{'strategy':<22} {'kind':<9} {'overhead':>9} {'A/B step':>9}  target  note")
    for name, kind, own, ab, note in results:
        flag = "" if kind not in target else "ok" if own <= target[kind] else "OVER"
        tgt = f"{target[kind]:.0%}" if kind in target else "-"
        ab_s = "" if ab != ab else f"{ab:+.1%}"
        print(f"{name:<22} {kind:<9} {own:>9.1%} {ab_s:>9}  {tgt:>5} {flag:<4} {note}")
    print(f"overhead: time inside the strategy / the rest of the same run's median step "
          f"(samplers: refresh and batching / an epoch of {step_ref:.2f} s steps, the fastest "
          "step time seen); A/B: the run's median step vs the baseline's (noisy under load). "
          "Outside the targets and max_strategy_overhead: 'encoder' strategies "
          "run a model of their own every step (a guide, a momentum encoder); 'setup' samplers "
          "cluster/mine once before training, a cost like mining's.")
    worst = max((r[2] for r in results if r[1] in target), default=0.0)
    print(f"speedup_vs_st={speedup:.3f} max_strategy_overhead={worst:.4f}")


if __name__ == "__main__":
    main()
