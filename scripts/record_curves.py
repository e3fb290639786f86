"""Record every strategy option's smoke-run loss curve and final metrics, or compare two
recordings: the check that a restructuring changed no behaviour.

    python scripts/record_curves.py record OUT.json [--only sampler/ngame ...]
    python scripts/record_curves.py compare BEFORE.json AFTER.json [--tol 1e-6]

``record`` runs ``hnm train experiment=smoke logger=csv trainer.log_every_n_steps=1`` once for
the baseline and once per option of the strategy groups (samplers, miners, in-batch negatives,
losses), each in its own folder with a cold embedding cache, and stores per option the
training loss of every step (read at full precision from the CSV logger) and every metric of
``metrics.json`` except timings, cache counters and the machine's figures (CPU time, load),
which change from one run of the same code to the next. ``compare`` prints one line per option
with the largest difference of the loss curve and of the metrics, and exits 1 when any option
differs by more than ``--tol`` or ran in one recording only; ``--common-keys`` compares the
metrics both recordings hold (one of an older commit may lack figures added since) and says
how many it left out. Extra Hydra overrides (e.g. a knob whose default another change moved on
purpose) go after ``--``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GROUPS = ("sampler", "miner", "negatives", "loss")
# what an option needs besides itself to train in a smoke run (as tests/effects/test_modes.py)
NEEDS = {
    "loss/margin_mse": ["+miner=denoise", "loss.allow_self_teacher=true"],
    "loss/kl": ["+miner=denoise", "loss.allow_self_teacher=true"],
    "miner/adore": ["miner.doc_encoder=${encoder}"],
    "miner/ance": ["miner.refresh_every_n_steps=1"],
    "miner/ar2": ["miner.refresh_every_n_steps=2", "miner.ranker.model=fresh"],
    "negatives/gist": ["negatives.gist.guide=${encoder}"],
    "sampler/rs2": ["sampler.partial_pass=true"],  # the smoke run is shorter than one pass
}
BASE = ["experiment=smoke", "logger=csv", "trainer.log_every_n_steps=1"]
SKIP_PREFIXES = ("time/", "cache/", "mine/time_")
# the machine's figures: they change from one run of the same code to the next
SKIP_KEYS = ("compute/cpu_s", "compute/load_mean", "compute/other_load")


def kept(key: str) -> bool:
    """A metric that behaviour decides (not a timing, a cache counter or the machine's load)."""
    return not key.startswith(SKIP_PREFIXES) and key not in SKIP_KEYS


def options() -> list[str]:
    out = ["baseline"]
    for group in GROUPS:
        out += [f"{group}/{p.stem}" for p in sorted((CONF / group).glob("*.yaml"))]
    return out


def overrides(option: str, negatives_file: Path | None) -> list[str]:
    if option == "baseline":
        return []
    group, name = option.split("/")
    out = [f"{'' if group == 'loss' else '+'}{group}={name}", *NEEDS.get(option, [])]
    if option == "miner/from_file":
        assert negatives_file is not None
        out.append(f"miner.path={negatives_file}")
    return out


def hnm() -> list[str]:
    exe = Path(sys.executable).with_name("hnm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hnm.cli"]


def run(args: list[str], folder: Path, log: Path) -> int:
    env = {**os.environ, "HNM_CACHE_DIR": str(folder.parent / f"cache_{folder.name}"),
           "WANDB_MODE": "offline"}
    with log.open("w") as f:
        return subprocess.call([*hnm(), *args, f"hydra.run.dir={folder}"], cwd=ROOT, env=env,
                               stdout=f, stderr=subprocess.STDOUT)


def read_losses(folder: Path) -> list[float]:
    files = sorted(folder.glob("**/version_*/metrics.csv"))
    losses: dict[int, float] = {}
    for path in files:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("train/loss") not in (None, ""):
                    losses[int(row["step"])] = float(row["train/loss"])
    return [losses[s] for s in sorted(losses)]


def record(out: Path, only: list[str], extra: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="hnm-curves-"))
    negatives = work / "negatives.jsonl"
    chosen = only or options()
    if "miner/from_file" in chosen:
        rc = run(["mine", *BASE[:1], "logger=none", f"output={negatives}"], work / "mine",
                 work / "mine.log")
        if rc:
            sys.exit(f"hnm mine failed (rc {rc}); see {work / 'mine.log'}")
    result: dict[str, dict] = {"_meta": {"overrides": [*BASE, *extra],
                                         "commit": _git("rev-parse", "HEAD"),
                                         "dirty": bool(_git("status", "--porcelain"))}}
    for option in chosen:
        folder = work / option.replace("/", "_")
        t0 = time.perf_counter()
        args = ["train", *BASE, *overrides(option, negatives), *extra]
        rc = run(args, folder, work / f"{folder.name}.log")
        entry: dict = {"args": args, "rc": rc, "seconds": round(time.perf_counter() - t0, 1)}
        if rc == 0:
            metrics = json.loads((folder / "metrics.json").read_text())
            entry["loss"] = read_losses(folder)
            entry["metrics"] = {k: v for k, v in sorted(metrics.items()) if kept(k)}
        result[option] = entry
        print(f"{option:28s} rc={rc} steps={len(entry.get('loss', []))} "
              f"{entry['seconds']:.0f}s", flush=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} (run folders in {work})")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _maxdiff(a: list[float] | dict, b: list[float] | dict) -> float:
    if isinstance(a, dict):
        keys = set(a) | set(b)
        if any(k not in a or k not in b for k in keys):
            return math.inf
        return max((abs(a[k] - b[k]) for k in keys), default=0.0)
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def compare(before: Path, after: Path, tol: float, common: bool = False) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    print(f"before: {a['_meta']}\nafter:  {b['_meta']}")
    print(f"| option | steps | max |Δ loss| | max |Δ metric| | same (tol {tol:g}) |")
    print("|---|--:|--:|--:|---|")
    bad = 0
    for option in sorted((set(a) | set(b)) - {"_meta"}):
        x, y = a.get(option), b.get(option)
        if x is None or y is None or x["rc"] or y["rc"]:
            bad += 1
            print(f"| {option} | - | - | - | NO (rc {x and x['rc']} / {y and y['rc']}) |")
            continue
        mx = {k: v for k, v in x["metrics"].items() if kept(k)}  # an older recording's too
        my = {k: v for k, v in y["metrics"].items() if kept(k)}
        note = ""
        if common:
            left_out = len(set(mx) ^ set(my))
            mx = {k: v for k, v in mx.items() if k in my}
            my = {k: v for k, v in my.items() if k in mx}
            note = f" ({len(mx)} metrics; {left_out} in one recording only)"
        dl, dm = _maxdiff(x["loss"], y["loss"]), _maxdiff(mx, my)
        same = dl <= tol and dm <= tol
        bad += not same
        print(f"| {option} | {len(y['loss'])} | {dl:.2e} | {dm:.2e} | "
              f"{'yes' if same else 'NO'}{note} |")
    print(f"{bad} option(s) differ")
    return 1 if bad else 0


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("out", type=Path)
    r.add_argument("--only", nargs="*", default=[])
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--tol", type=float, default=1e-6)
    c.add_argument("--common-keys", action="store_true",
                   help="compare only the metrics both recordings hold")
    args = p.parse_args(argv)
    if args.cmd == "record":
        if args.out.exists():
            sys.exit(f"{args.out} exists; choose a new file")
        record(args.out, args.only, extra)
    else:
        sys.exit(compare(args.before, args.after, args.tol, args.common_keys))


if __name__ == "__main__":
    main()
