"""Scaling of the search stage: exact and approximate top-k over synthetic embeddings.

For each corpus size (default 10k, 100k, 1M documents, d=384) and each index kind (``flat``
exact, ``ivf``, ``hnsw``), one subprocess builds a :class:`hnm.index.DocIndex` over synthetic
L2-normalised embeddings (a low-dimensional latent Gaussian mapped to d dimensions plus
noise, so approximate indexes face embedding-like structure rather than uniform noise),
searches the queries for the top-k, and reports build time, search time (best of 2 below
10^8 query-document pairs), time per query, recall@k against exact search (on a query
subset) and the subprocess's peak resident memory (``VmHWM``). Exact search also reports the
``torch.mm`` roofline of the same ``Q·Dᵀ`` product measured in the same subprocess.

    python scripts/bench_scale.py                       # the table (or bench_mining.py --scale)
    python scripts/bench_scale.py --sizes 10000 100000 --queries 500

IVF uses ``nlist ≈ sqrt(n)/2`` cells and ``nprobe`` cells per query, so its work per query
grows with ``sqrt(n)``; HNSW (M=16, efConstruction=40, efSearch=k) grows with ``log n`` but is
slow to build on 2 cores, so by default it stops at ``--hnsw-max`` documents.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

from hnm.memory import peak_rss_mb

KINDS = ("flat", "ivf", "hnsw")


def synthetic(n: int, d: int, seed: int, latent: int = 16, noise: float = 0.3,
              chunk: int = 100_000) -> np.ndarray:
    """(n, d) float32 unit vectors ``normalise(z·A + noise)``: a ``latent``-dimensional
    Gaussian ``z`` through a fixed random map ``A`` (the same for every call), plus isotropic
    noise, so neighbourhoods have the low intrinsic dimension of real text embeddings."""
    rng = np.random.default_rng(seed)
    a = np.random.default_rng(12345).standard_normal((latent, d), dtype=np.float32)
    a /= math.sqrt(latent)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = rng.standard_normal((m, latent), dtype=np.float32) @ a
        x += (noise / math.sqrt(d)) * rng.standard_normal((m, d), dtype=np.float32)
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out



def mm_roofline(q: np.ndarray, docs: np.ndarray, chunk: int = 65536, repeats: int = 2) -> float:
    """Seconds for the dense product ``Q·Dᵀ`` with ``torch.mm`` (best of ``repeats``), in corpus
    blocks so the output never exceeds ``len(q) × chunk`` floats."""
    import torch

    qt, dt = torch.from_numpy(q), torch.from_numpy(docs)
    out = torch.empty(len(q), min(chunk, len(docs)))
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in range(0, len(docs), chunk):
            block = dt[s:s + chunk]
            torch.mm(qt, block.T, out=out[:, :len(block)])
        best = min(best, time.perf_counter() - t0)
    return best


def one(n: int, kind: str, nq: int, k: int, d: int, nprobe: int, recall_queries: int) -> dict:
    """Measure one (corpus size, index kind) cell; runs inside its own subprocess."""
    from hnm.index import DocIndex, chunked_topk

    docs = synthetic(n, d, seed=1)
    q = synthetic(nq, d, seed=2)
    kw: dict = {}
    if kind == "ivf":
        kw = {"nlist": max(1, round(math.sqrt(n) / 2)), "nprobe": nprobe}
    elif kind == "hnsw":
        kw = {"hnsw_m": 16, "ef_construction": 40, "ef_search": k}
    t0 = time.perf_counter()
    index = DocIndex(docs, backend="faiss", index=kind, device="cpu", **kw)
    build = time.perf_counter() - t0
    repeats = 2 if n * nq <= 10**8 else 1  # best of 2, except for the largest products
    search = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, idx = index.search(q, k)
        search = min(search, time.perf_counter() - t0)
    row = {"n": n, "kind": kind, "queries": nq, "build_s": build, "search_s": search,
           "ms_per_query": 1e3 * search / nq, "ns_per_pair": 1e9 * search / (nq * n)}
    if kind == "flat":
        row["mm_s"] = mm_roofline(q, docs, repeats=repeats)
        row["roofline_fraction"] = row["mm_s"] / search
        row["recall"] = 1.0
    else:
        import torch

        m = min(recall_queries, nq)
        _, exact = chunked_topk(q[:m], torch.from_numpy(docs), k)
        hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(idx[:m], exact))
        row["recall"] = hits / (m * k)
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def table(rows: list[dict]) -> str:
    head = (f"{'corpus':>9} {'index':>5} {'queries':>7} {'build s':>8} {'search s':>9} "
            f"{'ms/query':>9} {'ns/(q·doc)':>10} {'recall@k':>8} {'mm roofline':>11} "
            f"{'peak MiB':>8}")
    lines = [head]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['n']:>9,} {r['kind']:>5}  skipped: {r['skipped']}")
            continue
        roof = f"{r['roofline_fraction']:.0%}" if "roofline_fraction" in r else "-"
        lines.append(
            f"{r['n']:>9,} {r['kind']:>5} {r['queries']:>7} {r['build_s']:>8.2f} "
            f"{r['search_s']:>9.3f} {r['ms_per_query']:>9.3f} {r['ns_per_pair']:>10.3f} "
            f"{r['recall']:>8.3f} {roof:>11} {r['peak_rss_mb']:>8.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--recall-queries", type=int, default=100)
    ap.add_argument("--hnsw-max", type=int, default=100_000,
                    help="largest corpus to build HNSW for (its build dominates on 2 cores)")
    ap.add_argument("--one", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        row = one(int(args.one[0]), args.one[1], args.queries, args.k, args.dim, args.nprobe,
                  args.recall_queries)
        print("RESULT " + json.dumps(row))
        return [row]
    rows = []
    for n in args.sizes:
        for kind in args.kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                rows.append({"n": n, "kind": kind, "skipped": f"n > --hnsw-max={args.hnsw_max}"})
                continue
            cmd = [sys.executable, __file__, "--one", str(n), kind, "--queries",
                   str(args.queries), "--k", str(args.k), "--dim", str(args.dim),
                   "--nprobe", str(args.nprobe), "--recall-queries", str(args.recall_queries)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            res = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
            if out.returncode or not res:
                rows.append({"n": n, "kind": kind, "skipped": f"failed: {out.stderr[-300:]}"})
            else:
                rows.append(json.loads(res[-1][len("RESULT "):]))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
