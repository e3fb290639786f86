"""Mining benchmark: hnm's dense miner against sentence-transformers' ``mine_hard_negatives``.

Same model (all-MiniLM-L6-v2 at ``max_seq_length`` 128), same data (``stdlib_code`` training
pairs, 1,000 by default, and its whole corpus), same settings (1 negative from ranks 10–50,
``top`` sampling, exact search, the same encoding batch size). No score margin: the two systems
define ``range_min`` differently once a margin drops candidates (hnm cuts the rank window
before the score filters, sentence-transformers after them, see ``hnm.miners.base``), so with
a margin they are not asked for the same negatives and "equal output" would not be defined. Each
system runs in its own subprocess (fresh model, one warm-up batch, its own peak memory) and is
timed end to end: encode the unique queries and the corpus once, search, filter, sample.
sentence-transformers encodes its corpus as ``corpus + positives`` de-duplicated, which is the
same set of texts here, and takes the positives' embeddings from it, so both encode the same
texts once. hnm encodes as ``hnm mine`` does, through the embedding cache, in a fresh empty
folder (a cold cache: key hashing, the encode and the write all count); ``--warm`` also runs
hnm a second time on the cache the first run filled (the next sweep job, or ``hnm mine`` again
with other settings, same model) and prints that figure separately.

``top`` sampling makes the output deterministic, so the benchmark asserts equal output: every
query gets the same negative from both systems, or two candidates that tie within 1e-4 (float32
rounding decides between them); otherwise it exits non-zero before printing a speed-up.

The search stage of hnm (index build + top-k + positive scores) is also timed alone on the
embeddings of the run (best of ``--repeats``) against a roofline: the dense product ``Q·Dᵀ``
with ``torch.mm`` for the same shapes on this machine, measured in the same process.

**bf16** (``encoder.inference=bf16``): where the CPU has bf16 hardware (AMX-BF16 or
AVX512-BF16, ``hnm.precision``), a third subprocess runs hnm with its passes under bf16
autocast, in the same rounds (its own cold cache). bf16 rounds the scores, so its output is
not asserted equal but measured: the queries whose negative is the same as ST's (ties within
``TIE`` count as same) and as hnm fp32's. With ``top`` sampling the output is the candidate at
rank 10, so this is the share of identical output; the whole rank 10–50 pools under the
README's ``random`` recipe are compared by ``scripts/bench_encoders.py``. Targets: 2× ST's
time, 95% identical. Without bf16 hardware the benchmark says so and reports fp32 only
(``--no-bf16`` leaves it out anywhere). The CPU, its bf16 instructions and the load average
before and after are printed.

Whether the negatives bf16 mines train as well as fp32's is a separate, longer step (nDCG@10
of the trained models): ``hnm mine`` with each backend, then ``hnm train +miner=from_file``
on each file over seeds and ``hnm compare`` (the commands are in ``scripts/README.md``).

    python scripts/bench_mining.py                 # ~3 min on 2 cores
    python scripts/bench_mining.py --pairs 300     # quicker
    python scripts/bench_mining.py --scale         # the scaling table (scripts/bench_scale.py)

The last line is ``speedup_vs_st=<x> roofline_fraction=<y> peak_rss_mb=<z>``: ST's end-to-end
time over hnm's, roofline time over hnm's search-stage time, and hnm's peak resident memory.
With bf16 measured, the line before it is ``bf16_speedup_vs_st=<x> bf16_over_fp32=<y>
bf16_same_negatives=<share>`` (the share of queries whose negative is ST's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from hnm.memory import peak_rss_mb

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# no relative_margin: with one, range_min means different ranks in the two systems (docstring)
SETTINGS = {"num_negatives": 1, "range_min": 10, "range_max": 50, "sampling_strategy": "top"}
TIE = 1e-4  # two candidates whose scores differ by less are a tie at float32 precision



def load(args: argparse.Namespace):
    from hnm.data.dataset import TrainPairs
    from hnm.data.stdlib_code import load_stdlib_code
    from hnm.encoders import minilm_encoder

    data = load_stdlib_code(corpus=args.corpus)
    pairs = TrainPairs.from_split(data, "train", args.pairs, args.seed)
    model = minilm_encoder(args.max_seq_length)
    model.encode(["warm up the model"] * 8, batch_size=8)  # first-call overheads, both sides
    return data, pairs, model


def run_hnm(args: argparse.Namespace) -> dict:
    from hnm.cache import frozen_embed_fn
    from hnm.cache.embed import EmbeddingCache, activate
    from hnm.encoders.embed import embed_fn
    data, pairs, model = load(args)
    if args.backend != "torch":  # its own first-call overheads (bf16 kernels), outside timing
        embed_fn(model, 8, progress=False, backend=args.backend)(["warm up the model"] * 8)
    cache = EmbeddingCache(dir=args.cache_dir, embeddings=args.cache_dir is not None)
    with activate(cache):
        row = _mine_hnm(args, data, pairs, frozen_embed_fn(model, args.batch_size,
                                                           progress=False,
                                                           backend=args.backend), cache)
    return {**row, **cache.metrics()}


def _mine_hnm(args, data, pairs, embed, cache) -> dict:
    import numpy as np
    import torch

    from hnm.miners.dense_static import DenseStaticMiner

    seen: list[np.ndarray] = []

    def recording(texts):
        out = embed(texts)
        seen.append(out)
        return out

    miner = DenseStaticMiner(seed=args.seed, verbose=False, **SETTINGS)
    t0 = time.perf_counter()
    stats = miner.mine(data, pairs, recording, recording)
    cache.close()  # the cache's write counts: hnm mine pays it before it exits
    total = time.perf_counter() - t0
    negs, _ = miner.negatives(list(range(len(pairs))), 0, 0)
    q_emb, d_emb = seen
    chosen: dict[str, list] = {}
    qtexts = pairs.query_texts()
    for p, row in enumerate(negs):
        qrow, drows = miner.pair_qrow[p], [miner.doc_row[d] for d in row]
        for d, r in zip(row, drows):
            chosen.setdefault(qtexts[p], []).append(
                [data.doc_text(d), float(q_emb[qrow] @ d_emb[r])])
    k = miner.search_k
    search = min(_timed(lambda: miner.dense_candidates(q_emb, d_emb, k))
                 for _ in range(args.repeats))
    qt, dt = torch.from_numpy(q_emb), torch.from_numpy(d_emb)
    mm = min(_timed(lambda: torch.mm(qt, dt.T)) for _ in range(args.repeats))
    return {"total_s": total, "encode_s": stats.get("time_encode_s", float("nan")),
            "search_in_run_s": stats.get("time_search_s", float("nan")),
            "search_s": search, "mm_s": mm, "k": k, "queries": len(q_emb),
            "docs": len(d_emb), "texts": len(q_emb) + len(d_emb),
            "queries_with_negative": int((miner.pool.count > 0).sum()),
            "short_queries": int(stats.get("short_queries", -1)),
            "pairs_out": sum(1 for row in negs if row), "peak_rss_mb": peak_rss_mb(),
            "chosen": chosen}


def run_st(args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    data, pairs, model = load(args)
    ds = Dataset.from_dict({"query": pairs.query_texts(), "positive": pairs.positive_texts()})
    corpus = [data.doc_text(d) for d in data.corpus]
    t0 = time.perf_counter()
    out = mine_hard_negatives(ds, model, corpus=corpus, batch_size=args.batch_size,
                              use_faiss=args.st_faiss, verbose=False, output_format="n-tuple",
                              output_scores=True, **SETTINGS)
    total = time.perf_counter() - t0
    chosen: dict[str, list] = {}
    negs = [c for c in out.column_names if c.startswith("negative")]
    for row in out:
        for j, c in enumerate(negs):
            chosen.setdefault(row["query"], []).append([row[c], float(row["scores"][1 + j])])
    return {"total_s": total, "queries_with_negative": len(set(out["query"])),
            "pairs_out": len(out), "texts": len(set(ds["query"])) + len(set(corpus)),
            "peak_rss_mb": peak_rss_mb(), "chosen": chosen}


def same_output(st: dict, h: dict) -> tuple[int, int, list[str]]:
    """Queries with the same negatives on both sides, all queries, and the unexplained ones.

    A query whose negatives differ counts as the same output when the differing candidates
    tie: their scores (each side's own) are within ``TIE`` of each other, so which of them
    ranks first is float32 rounding, not a different algorithm. A query only one side gives a
    negative to is unexplained unless its only candidate sits at the margin (within ``TIE``).
    """
    same, bad = 0, []
    for q in set(st["chosen"]) | set(h["chosen"]):
        a, b = st["chosen"].get(q, []), h["chosen"].get(q, [])
        if sorted(t for t, _ in a) == sorted(t for t, _ in b):
            same += 1
            continue
        sa, sb = sorted(s for _, s in a), sorted(s for _, s in b)
        if len(sa) == len(sb) and all(abs(x - y) < TIE for x, y in zip(sa, sb)):
            same += 1  # a tie broken the other way
            continue
        bad.append(q)
    return same, len(set(st["chosen"]) | set(h["chosen"])), bad


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def child(which: str, argv: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--one", which, *argv]
    out = subprocess.run(cmd, capture_output=True, text=True)
    res = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not res:
        sys.exit(f"{which} run failed:\n{out.stderr[-3000:]}")
    return json.loads(res[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=1000, help="training pairs (seeded subset)")
    ap.add_argument("--corpus", default="paired", choices=["paired", "all"])
    ap.add_argument("--batch-size", type=int, default=64, help="encoding batch, both systems")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="search-stage timings (best of)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate ST and hnm this many times; the best time of each counts")
    ap.add_argument("--st-faiss", action="store_true", help="ST with use_faiss=True")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warm", action="store_true",
                    help="also time hnm on the cache its first run filled (reported apart)")
    ap.add_argument("--no-bf16", action="store_true",
                    help="leave hnm-bf16 out (it runs where the CPU has bf16 hardware)")
    ap.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--scale", action="store_true",
                    help="run scripts/bench_scale.py instead (other arguments go to it)")
    ap.add_argument("--one", choices=["hnm", "st"], help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.scale:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_scale

        bench_scale.main(rest)
        return
    if rest:
        ap.error(f"unrecognised arguments: {' '.join(rest)}")
    if args.one:
        row = run_hnm(args) if args.one == "hnm" else run_st(args)
        print("RESULT " + json.dumps(row))
        return
    from hnm.precision import bf16_support

    support = bf16_support("cpu")
    bf16 = support.ok and not args.no_bf16
    load_before = loadavg()
    print(f"CPU: {support.what}; bf16 hardware: {'yes' if support.ok else 'no'}; load average "
          f"{load_before} (uptime)", flush=True)
    if not support.ok:
        print("no bf16 hardware on this CPU: hnm-bf16 is not run (fp32 only)")
    argv = [a for a in sys.argv[1:] if a not in ("--warm", "--no-bf16")]
    st_runs, hnm_runs, warm_runs, bf16_runs = [], [], [], []
    for _ in range(args.rounds):
        st_runs.append(child("st", argv))
        with tempfile.TemporaryDirectory(prefix="hnm-bench-cache-") as tmp:
            hnm_runs.append(child("hnm", [*argv, "--cache-dir", tmp]))
            if args.warm:
                warm_runs.append(child("hnm", [*argv, "--cache-dir", tmp]))
        if bf16:
            with tempfile.TemporaryDirectory(prefix="hnm-bench-cache-") as tmp:
                bf16_runs.append(child("hnm", [*argv, "--cache-dir", tmp, "--backend",
                                               "bf16"]))
    st = min(st_runs, key=lambda r: r["total_s"])
    h = min(hnm_runs, key=lambda r: r["total_s"])
    same, total, bad = same_output(st, h)
    gflop = 2 * h["queries"] * h["docs"] * 384 / 1e9
    print(f"setup: {args.pairs} pairs, {h['queries']} unique queries, {h['docs']} documents, "
          f"MiniLM len {args.max_seq_length}, batch {args.batch_size}, {os.cpu_count()} CPUs; "
          f"settings {SETTINGS}")
    print(f"st_end_to_end_s={st['total_s']:.2f} texts_encoded={st['texts']} "
          f"queries_with_negative={st['queries_with_negative']} peak_rss_mb={st['peak_rss_mb']:.0f}")
    print(f"hnm_end_to_end_s={h['total_s']:.2f} texts_encoded={h['texts']} "
          f"queries_with_negative={h['queries_with_negative']} peak_rss_mb={h['peak_rss_mb']:.0f}")
    print(f"hnm cache (cold): encoded {h['cache/encoded_texts']}, served "
          f"{h['cache/cached_texts']}")
    print(f"hnm_encode_s={h['encode_s']:.2f} ({h['texts'] / h['encode_s']:.1f} texts/s)")
    print(f"hnm_search_stage_s={h['search_s']:.4f} (in run: {h['search_in_run_s']:.4f}; "
          f"top-{h['k']}, index build + search + positive scores)")
    print(f"roofline_mm_s={h['mm_s']:.4f} ({gflop:.2f} GFLOP, {gflop / h['mm_s']:.1f} GFLOP/s)")
    if args.rounds > 1:
        print("all rounds (s): st=" + ",".join(f"{r['total_s']:.1f}" for r in st_runs)
              + " hnm=" + ",".join(f"{r['total_s']:.1f}" for r in hnm_runs))
    if warm_runs:
        w = min(warm_runs, key=lambda r: r["total_s"])
        ws, wt, wbad = same_output(h, w)
        print(f"warm cache (hnm's second run on the cache its first filled): "
              f"hnm_warm_s={w['total_s']:.2f} encoded {w['cache/encoded_texts']} served "
              f"{w['cache/cached_texts']}; same negatives as the cold run {ws}/{wt}; "
              f"warm_speedup_vs_st={st['total_s'] / w['total_s']:.2f} (not the target's "
              "figure: that one is cold on both sides)")
    print(f"same negatives: {same}/{total} queries (ties within {TIE} count as same); "
          f"differing: {len(bad)}")
    bf16_line = None
    if bf16_runs:
        b = min(bf16_runs, key=lambda r: r["total_s"])
        b_st, b_total, _ = same_output(st, b)
        b_fp, b_fp_total, _ = same_output(h, b)
        x = st["total_s"] / b["total_s"]
        print(f"hnm_bf16_end_to_end_s={b['total_s']:.2f} encode {b['encode_s']:.2f} s "
              f"({b['texts'] / b['encode_s']:.1f} texts/s) queries_with_negative="
              f"{b['queries_with_negative']} peak_rss_mb={b['peak_rss_mb']:.0f}")
        print(f"bf16: same negative as ST {b_st}/{b_total}, as hnm fp32 {b_fp}/{b_fp_total} "
              f"(ties within {TIE} count as same)")
        met = x >= 2.0 and b_st / b_total >= 0.95
        print(f"bf16 targets (>= 2x ST, >= 95% identical): {'met' if met else 'NOT met'}")
        if args.rounds > 1:
            print("bf16 rounds (s): " + ",".join(f"{r['total_s']:.1f}" for r in bf16_runs))
        bf16_line = (f"bf16_speedup_vs_st={x:.2f} bf16_over_fp32={h['total_s'] / b['total_s']:.2f}"
                     f" bf16_same_negatives={b_st / b_total:.3f}")
    print(f"CPU: {support.what}; load average before {load_before}, after {loadavg()}")
    if bad:
        q = bad[0]
        sys.exit(f"the two systems mined different negatives for {len(bad)} queries, e.g. "
                 f"{q[:80]!r}: st {st['chosen'].get(q)} hnm {h['chosen'].get(q)}; the "
                 "speed-up would compare different outputs")
    if bf16_line:
        print(bf16_line)
    print(f"speedup_vs_st={st['total_s'] / h['total_s']:.2f} "
          f"roofline_fraction={h['mm_s'] / h['search_s']:.2f} "
          f"peak_rss_mb={h['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    main()
