"""Sweep benchmark: a 4-job sweep with the embedding cache against the same jobs without it.

The jobs (``hnm train`` on the default data and model, one subprocess each, as a sweep's jobs
would run): the baseline, ``+miner=dense_static``, ``+negatives=gist`` (guided by the starting model,
``negatives.gist.guide=${encoder}``) and ``+miner=denoise``.
They run twice, side by side in one run and interleaved job by job (so a change in the
machine's load hits both sides alike): once with a cold embedding cache in a fresh folder
(``cache.dir=<tmp>``), once with it off (``cache.embeddings=false cache.in_run=false``, every
frozen-weight pass encodes, as before the cache). Everything else is identical.

    python scripts/bench_sweep.py                       # full size (the default experiment)
    python scripts/bench_sweep.py --smoke               # tiny encoder, ~minutes: does it work?
    python scripts/bench_sweep.py --max-train-pairs 200 --max-steps 5 --max-queries 100

Prints one row per job and side (wall seconds, frozen-weight texts encoded and served from
the cache, nDCG@10 after training) and, last, ``sweep_speedup=<x> encode_passes_saved=<n>``:
the cache-off sweep's wall time over the cached sweep's, and the frozen-weight texts the
cached sweep did not encode, in corpus-sized passes (rounded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = {"baseline": [], "dense_static": ["+miner=dense_static"],
        # GIST guided by the starting model (it refuses to start without a guide): the
        # frozen-weight passes the cache can serve
        "gist": ["+negatives=gist", "negatives.gist.guide=${encoder}"],
        "denoise": ["+miner=denoise"]}
OFF = ["cache.embeddings=false", "cache.in_run=false"]


def overrides(args: argparse.Namespace) -> list[str]:
    out = ["logger=none", f"seed={args.seed}"]
    if args.smoke:
        out.append("experiment=smoke")
    if args.max_train_pairs is not None:
        out.append(f"data.max_train_pairs={args.max_train_pairs}")
    if args.max_steps is not None:
        out.append(f"trainer.max_steps={args.max_steps}")
    if args.max_queries is not None:
        out.append(f"eval.evaluator.max_queries={args.max_queries}")
    return out + list(args.extra)


def run_job(name: str, side: str, common: list[str], work: Path, env: dict[str, str],
            timeout: int) -> dict:
    out = work / side / name
    extra = OFF if side == "off" else [f"cache.dir={work / 'cache'}"]
    cmd = [sys.executable, "-m", "hnm.cli", "train", *common, *JOBS[name], *extra,
           f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{side}/{name} failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    ndcg = next((v for k, v in metrics.items() if k.startswith("test/") and
                 k.endswith("/ndcg@10")), float("nan"))
    return {"job": name, "side": side, "wall_s": wall,
            "run_s": metrics.get("time/total_s", float("nan")),
            "encoded": int(metrics.get("cache/encoded_texts", 0)),
            "cached": int(metrics.get("cache/cached_texts", 0)), "ndcg@10": ndcg}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="experiment=smoke (tiny encoder)")
    p.add_argument("--max-train-pairs", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-queries", type=int, default=None, help="eval.evaluator.max_queries")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--jobs", default=",".join(JOBS), help="comma-separated subset of the jobs")
    p.add_argument("--timeout", type=int, default=7200, help="seconds per job")
    p.add_argument("--keep", action="store_true", help="keep the run folders and the cache")
    p.add_argument("extra", nargs="*", help="more hnm train overrides, for both sides")
    args = p.parse_args()
    names = [j for j in args.jobs.split(",") if j]
    unknown = set(names) - set(JOBS)
    if unknown:
        raise SystemExit(f"--jobs: unknown {sorted(unknown)}; expected some of {list(JOBS)}")

    from hnm.data.stdlib_code import load_stdlib_code

    data_cache = os.environ.get("HNM_CACHE_DIR") or str(Path.home() / ".cache" / "hnm")
    corpus = len(load_stdlib_code(cache_dir=data_cache).corpus)
    common = overrides(args) + [f"data.source.cache_dir={data_cache}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "TOKENIZERS_PARALLELISM": "false"}
    work = Path(tempfile.mkdtemp(prefix="hnm-bench-sweep-"))
    rows = []
    try:
        for name in names:  # interleaved: machine load drifts hit both sides alike
            for side in ("cache", "off"):
                row = run_job(name, side, common, work, env, args.timeout)
                rows.append(row)
                print(f"{row['side']:>5} {row['job']:<13} wall {row['wall_s']:8.1f}s  run "
                      f"{row['run_s']:8.1f}s  encoded {row['encoded']:>7}  cached "
                      f"{row['cached']:>7}  ndcg@10 {row['ndcg@10']:.4f}", flush=True)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"run folders and cache kept in {work}")
    side = {s: [r for r in rows if r["side"] == s] for s in ("cache", "off")}
    wall = {s: sum(r["wall_s"] for r in side[s]) for s in side}
    run = {s: sum(r["run_s"] for r in side[s]) for s in side}
    enc = {s: sum(r["encoded"] for r in side[s]) for s in side}
    gap = max(abs(a["ndcg@10"] - b["ndcg@10"]) for a, b in zip(side["cache"], side["off"]))
    print(f"overrides: {' '.join(common)}")
    print(f"corpus {corpus} documents; frozen-weight texts encoded: off {enc['off']}, cache "
          f"{enc['cache']}; served from the cache {sum(r['cached'] for r in side['cache'])}")
    print(f"sweep wall: off {wall['off']:.1f}s, cache {wall['cache']:.1f}s; in-process: off "
          f"{run['off']:.1f}s, cache {run['cache']:.1f}s (x{run['off'] / run['cache']:.2f}); "
          f"max |d nDCG@10| between sides {gap:.4f}")
    saved = round((enc["off"] - enc["cache"]) / max(corpus, 1))
    print(f"sweep_speedup={wall['off'] / wall['cache']:.2f} encode_passes_saved={saved}")


if __name__ == "__main__":
    main()
