"""No-gradient encoder backends side by side: throughput, peak memory, nDCG@10, mined negatives.

One process, one MiniLM (all-MiniLM-L6-v2, ``max_seq_length`` 128), every backend of
``encoder.inference`` (``hnm.encoders.inference``) at the default encode batch (64) and, for
torch and onnx, a larger one (``--big-batch``). ``bf16`` (bf16 autocast) runs only where the
CPU has bf16 hardware (AMX-BF16 or AVX512-BF16; ``hnm.precision``): elsewhere the benchmark
says so and leaves it out. The CPU and its bf16 instructions are printed first.

1. **Throughput**: ``--n`` texts (a seeded mix of ``stdlib_code`` corpus documents and
   queries) encoded by each variant in turn, ``--rounds`` times interleaved (so all share the
   background load, reported as the load average); the best round of each counts, and its
   ratio to torch fp32 at batch 64 (the current path) is printed.
2. **Peak memory**: the resident set's high-water mark during a variant's passes (sampled every
   2 ms) above the resident set before them, plus what building the variant added (the ONNX
   session or the int8 copy of the weights).
3. **nDCG@10 and Recall@100**: the zero-shot evaluation (``RetrievalEvaluator``, the ``test``
   split, whole corpus) with each variant's embeddings, and the wall time of that evaluation
   (one pass each, in turn: not interleaved, so the throughput ratio is the one to trust);
   the nDCG@10 difference to torch fp32 must stay within 0.002 for an exact backend to be a
   default, and within 0.001 (nDCG@10 and Recall@100) for bf16's target.
4. **Mining**: ``dense_static`` (``scripts/bench_mining.py``'s settings) on ``--pairs``
   training pairs with each variant; the mined pools (ranked candidates after the filters)
   compared with torch fp32's: queries whose pool is the same set, mean Jaccard overlap, and
   the sampled negatives that are the same.

    python scripts/bench_encoders.py                 # --n 1000: ~10 min on 2 busy cores
    python scripts/bench_encoders.py --n 500 --rounds 2 --pairs 300
    python scripts/bench_encoders.py --variants bf16 # torch fp32 vs bf16 only

The last line is ``best_default=<variant> speedup=<x>``: the fastest variant that keeps every
nDCG@10 within 0.002 and every mined pool equal (bf16 and int8 excluded: they round), and its
throughput over torch fp32's. With bf16 measured, the line before it is
``bf16_speedup=<x> d_ndcg10=… d_recall100=… pools_same=…``, against bf16's targets (2.5×,
|Δ| ≤ 0.001, ≥ 95% of the mined pools the same as fp32's).
"""

from __future__ import annotations

import argparse
import os
import random
import threading
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

SETTINGS = {"num_negatives": 1, "range_min": 10, "range_max": 50,
            "sampling_strategy": "random", "relative_margin": 0.05}


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRss:
    """High-water mark of the resident set inside the block, above its value at the start."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def extra(self) -> float:
        return self.peak - self.start


def subset(data, pairs, n_queries: int, n_docs: int, seed: int):
    """The data with ``n_queries`` test queries and a corpus of their and the pairs' documents
    plus random others, ``n_docs`` in all (0: everything)."""
    from hnm.data.dataset import RetrievalData

    rng = random.Random(seed)
    test = data.qrels["test"]
    qids = sorted(test)
    if n_queries and n_queries < len(qids):
        qids = sorted(rng.sample(qids, n_queries))
    if not n_docs:
        return RetrievalData(data.name, data.corpus, data.queries,
                             {**data.qrels, "test": {q: test[q] for q in qids}})
    keep = {d for q in qids for d in test[q]}
    if pairs is not None:
        keep |= {d for q in pairs.qids for d in pairs.positives[q]}
    others = sorted(set(data.corpus) - keep)
    keep |= set(rng.sample(others, max(0, min(len(others), n_docs - len(keep)))))
    corpus = {d: data.corpus[d] for d in data.corpus if d in keep}
    return RetrievalData(data.name, corpus, data.queries,
                         {"train": data.qrels["train"], "test": {q: test[q] for q in qids}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="texts per throughput pass")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--big-batch", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=500, help="training pairs mined (0: skip)")
    ap.add_argument("--no-eval", action="store_true", help="skip nDCG@10 and mining")
    ap.add_argument("--eval-queries", type=int, default=0,
                    help="test queries evaluated (seeded subset; 0: all 759)")
    ap.add_argument("--eval-docs", type=int, default=0,
                    help="corpus for evaluation and mining: the judged documents plus random "
                         "others up to this many (0: the whole corpus, 3,886)")
    ap.add_argument("--eval-variants", default="",
                    help="variants evaluated and mined (default: all measured)")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--variants", default="",
                    help="comma list among torch,torch_big,bf16,bf16_big,onnx,onnx_big,int8,"
                         "onnx_int8")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import torch

    from hnm.data.dataset import TrainPairs
    from hnm.data.stdlib_code import load_stdlib_code
    from hnm.encoders import minilm_encoder
    from hnm.encoders.embed import embed_fn
    from hnm.eval.evaluator import RetrievalEvaluator
    from hnm.miners.dense_static import DenseStaticMiner
    from hnm.precision import bf16_support

    bs, big = args.batch_size, args.big_batch
    variants = {"torch": ("torch", bs), "torch_big": ("torch", big), "bf16": ("bf16", bs),
                "bf16_big": ("bf16", big), "onnx": ("onnx", bs), "onnx_big": ("onnx", big),
                "int8": ("int8", bs), "onnx_int8": ("onnx_int8", bs)}
    support = bf16_support("cpu")
    print(f"CPU: {support.what}; bf16 hardware: {'yes' if support.ok else 'no'}")
    if not support.ok:
        print("no bf16 hardware on this CPU: the bf16 variants are left out (fp32 only)")
        variants = {k: v for k, v in variants.items() if v[0] != "bf16"}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: the onnx variants are skipped (pip install 'hnm[onnx]')")
        variants = {k: v for k, v in variants.items() if not v[0].startswith("onnx")}
    if args.variants:
        keep = ["torch", *args.variants.split(",")]
        variants = {k: v for k, v in variants.items() if k in keep}

    data = load_stdlib_code()
    model = minilm_encoder(args.max_seq_length)
    docs = [data.doc_text(d) for d in data.corpus]
    queries = [data.queries[q] for q in data.queries]
    rng = random.Random(args.seed)
    pool = docs + queries
    texts = rng.sample(pool, min(args.n, len(pool)))
    load = loadavg()
    print(f"setup: MiniLM len {args.max_seq_length}, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} CPUs, load average {load} (uptime); {len(texts)} texts "
          f"(mean {np.mean([len(t) for t in texts]):.0f} chars), {args.rounds} rounds")

    build_mb: dict[str, float] = {}
    fns = {}
    for name, (backend, batch) in variants.items():
        with PeakRss() as mem:
            fn = embed_fn(model, batch, progress=False, backend=backend)
            fn(texts[:8])  # builds the export / the int8 copy, warms up
        build_mb[name] = mem.peak - mem.start if backend != "torch" else 0.0
        fns[name] = fn

    best: dict[str, float] = {}
    peak: dict[str, float] = {}
    for r in range(args.rounds):
        order = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for name in order:
            with PeakRss() as mem:
                t0 = time.perf_counter()
                fns[name](texts)
                dt = time.perf_counter() - t0
            best[name] = min(best.get(name, dt), dt)
            peak[name] = max(peak.get(name, 0.0), mem.extra)
        print(f"round {r + 1}: " + " ".join(f"{k}={len(texts) / best[k]:.1f}" for k in order)
              + " texts/s (best so far)")
    ref = np.asarray(fns["torch"](texts[:64]))
    maxdiff = {k: float(np.abs(np.asarray(f(texts[:64])) - ref).max()) for k, f in fns.items()}

    ndcg: dict[str, float] = {}
    recall: dict[str, float] = {}
    eval_s: dict[str, float] = {}
    mined: dict[str, tuple] = {}
    if not args.no_eval:
        pairs = TrainPairs.from_split(data, "train", args.pairs, 42) if args.pairs else None
        edata = subset(data, pairs, args.eval_queries, args.eval_docs, args.seed)
        evaluator = RetrievalEvaluator(edata, split="test", k=100)
        print(f"evaluation: {len(evaluator.qids)} test queries, {len(edata.corpus)} documents; "
              f"mining: {len(pairs) if pairs else 0} training pairs", flush=True)
        chosen = args.eval_variants.split(",") if args.eval_variants else list(fns)
        for name, fn in fns.items():
            if name not in chosen and name != "torch":
                continue
            memo: dict[str, np.ndarray] = {}

            def memo_fn(ts, fn=fn, memo=memo):
                new = [t for t in dict.fromkeys(ts) if t not in memo]
                if new:
                    memo.update(zip(new, fn(new)))
                return np.stack([memo[t] for t in ts]) if ts else np.zeros((0, 384), np.float32)

            t0 = time.perf_counter()
            metrics = evaluator(memo_fn, memo_fn, "test")
            eval_s[name] = time.perf_counter() - t0
            ndcg[name] = next(v for k, v in metrics.items() if k.endswith("/ndcg@10"))
            recall[name] = next(v for k, v in metrics.items() if k.endswith("/recall@100"))
            if pairs is not None:
                miner = DenseStaticMiner(seed=42, verbose=False, **SETTINGS)
                miner.mine(edata, pairs, memo_fn, memo_fn)
                negs, _ = miner.negatives(list(range(len(pairs))), 0, 0)
                p = miner.pool
                sets = [frozenset(int(x) for x in p.idx[q, :int(p.count[q])])
                        for q in range(len(p.count))]
                mined[name] = (sets, [tuple(n) for n in negs])
            print(f"evaluated {name}: nDCG@10 {ndcg[name]:.4f} Recall@100 {recall[name]:.4f} "
                  f"in {eval_s[name]:.1f} s", flush=True)

    print(f"\n{'variant':<10} {'backend':<9} {'batch':>5} {'texts/s':>8} {'x torch':>7} "
          f"{'peak MB':>7} {'build MB':>8} {'max|diff|':>9} {'nDCG@10':>8} {'d nDCG':>8} "
          f"{'R@100':>7} {'d R@100':>8} {'eval s':>7} {'pool same':>9} {'jaccard':>7} "
          f"{'negs same':>9}")
    base = best["torch"]
    ok = {}
    pools_same: dict[str, float] = {}
    for name, (backend, batch) in variants.items():
        row = (f"{name:<10} {backend:<9} {batch:>5} {len(texts) / best[name]:>8.1f} "
               f"{base / best[name]:>7.2f} {peak[name]:>7.0f} {build_mb[name]:>8.0f} "
               f"{maxdiff[name]:>9.1e}")
        good = True
        if name in ndcg:
            d = ndcg[name] - ndcg["torch"]
            row += (f" {ndcg[name]:>8.4f} {d:>+8.4f} {recall[name]:>7.4f} "
                    f"{recall[name] - recall['torch']:>+8.4f} {eval_s[name]:>7.1f}")
            good = abs(d) <= 0.002
        if name in mined:
            (s0, n0), (s1, n1) = mined["torch"], mined[name]
            same = np.mean([a == b for a, b in zip(s0, s1)])
            jac = np.mean([1.0 if not (a | b) else len(a & b) / len(a | b)  # empty = empty
                           for a, b in zip(s0, s1)])
            nsame = np.mean([a == b for a, b in zip(n0, n1)])
            row += f" {same:>9.1%} {jac:>7.4f} {nsame:>9.1%}"
            pools_same[name] = float(same)
            good = good and same == 1.0
        ok[name] = good
        print(row)
    print("peak MB: resident-set high-water mark during the passes above the resident set before "
          "them; build MB: what building the variant added (ONNX session, int8 weights); "
          "max|diff|: largest embedding difference to torch fp32 on 64 texts; pool same / "
          "jaccard: dense_static pools (ranked candidates after filters) vs torch fp32's; negs "
          "same: the sampled negatives")
    print(f"CPU: {support.what}; load average before {load}, after {loadavg()} (uptime)")
    if "bf16" in variants:
        x = base / best["bf16"]
        dn = ndcg["bf16"] - ndcg["torch"] if "bf16" in ndcg else float("nan")
        dr = recall["bf16"] - recall["torch"] if "bf16" in recall else float("nan")
        ps = pools_same.get("bf16", float("nan"))
        met = x >= 2.5 and abs(dn) <= 0.001 and abs(dr) <= 0.001 and ps >= 0.95
        print(f"bf16 vs torch fp32 (targets: >= 2.5x, |d| <= 0.001, pools >= 95%): "
              f"{'met' if met else 'NOT met'}")
        print(f"bf16_speedup={x:.2f} d_ndcg10={dn:+.4f} d_recall100={dr:+.4f} "
              f"pools_same={ps:.3f}")
    # exact backends only: quantised ones (int8) and bf16 round, they are opt-in or `auto`
    exact = [k for k in variants if ok.get(k) and "int8" not in k and "bf16" not in k]
    pick = max(exact, key=lambda k: base / best[k])
    print(f"best_default={pick} speedup={base / best[pick]:.2f}")


if __name__ == "__main__":
    main()
