"""Every strategy option with its defaults against the baseline, on the dev split: the README's
defaults table.

    python scripts/defaults_table.py run OUT [--seeds 1 2 3] [--only miner/ance ...] [-- EXTRA]
    python scripts/defaults_table.py table OUT        # compare + the Markdown table

``run`` trains the default experiment (MiniLM, stdlib_code, 1,000 pairs, one epoch) with
``data.eval_split=dev`` for the baseline and for every option of the sampler, miner, negatives
and loss groups (``NEEDS`` adds what an option cannot train without, e.g. a teacher for the
distillation losses), one folder per option and seed under ``OUT/runs``; a finished run is
kept and never redone; an option that refuses to start (exit 2) is recorded with its message in
``OUT/refused.json``. Round-robin over seeds, so every option has its first seed before any
has its second. ``table`` runs ``hnm compare`` over all runs (one family: Holm's adjustment
covers every option) and prints one row per option: Δ nDCG@10 with its 95% CI (queries and
seeds), Holm p, the verdict (below the baseline beyond noise, or not), the texts encoded with
gradient as a multiple of the baseline's (machine-independent) and the fit time as one (wall
time: read it only from runs on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("sampler", "miner", "negatives", "loss")
NEEDS = {"loss/margin_mse": ["+miner=denoise"], "loss/kl": ["+miner=denoise"]}
BASE = ["data.eval_split=dev", "group=defaults"]


def options() -> list[str]:
    out = ["baseline"]
    for group in GROUPS:
        out += [f"{group}/{p.stem}" for p in sorted((ROOT / "conf" / group).glob("*.yaml"))
                if not (group == "loss" and p.stem == "infonce")]
    return [o for o in out if o != "miner/from_file"]  # needs a file: hnm mine's output


def overrides(option: str) -> list[str]:
    if option == "baseline":
        return []
    group, name = option.split("/")
    return [f"{'' if group == 'loss' else '+'}{group}={name}", *NEEDS.get(option, [])]


def hnm() -> list[str]:
    exe = Path(sys.executable).with_name("hnm")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "hnm.cli"]


def run(out: Path, seeds: list[int], only: list[str], extra: list[str],
        recipes: dict[str, list[str]] | None = None) -> None:
    """Train every chosen option (or named recipe: ``recipes`` maps a name to its overrides)."""
    refused_file = out / "refused.json"
    refused = json.loads(refused_file.read_text()) if refused_file.is_file() else {}
    chosen = ["baseline", *[o for o in (only or options()) if o != "baseline"]]
    for seed in seeds:
        for option in chosen:
            folder = out / "runs" / f"{option.replace('/', '_')}_s{seed}"
            if (folder / "metrics.json").is_file() or option in refused:
                continue
            log = out / "logs" / f"{folder.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            with log.open("w") as f:
                args = recipes[option] if recipes else overrides(option)
                rc = subprocess.call([*hnm(), "train", *BASE, *args, f"seed={seed}",
                                      *extra, f"hydra.run.dir={folder}"], cwd=ROOT,
                                     stdout=f, stderr=subprocess.STDOUT, env=os.environ)
            text = log.read_text(errors="replace")
            if rc == 2 and "error:" in text:
                refused[option] = text[text.rindex("error:") + 6:].strip().splitlines()[0]
                refused_file.write_text(json.dumps(refused, indent=1))
            print(f"{option:28s} seed={seed} rc={rc} {time.perf_counter() - t0:.0f}s",
                  flush=True)


def table(out: Path, recipes: dict[str, list[str]] | None = None) -> None:
    cmp = out / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    subprocess.check_call([*hnm(), "compare", str(out / "runs"), "--baseline", "defaults",
                           "--out", str(cmp)], cwd=ROOT)
    rows = [r for r in csv.DictReader((cmp / "compare.csv").open())
            if r["metric"] == "ndcg@10"]
    refused = json.loads((out / "refused.json").read_text()) if (
        out / "refused.json").is_file() else {}
    verdicts = recipes is None  # a recipe is chosen by its Δ, not judged against a floor
    base = next((r for r in rows if r["baseline"] == "True"), None)

    def grad(r: dict[str, str]) -> str:  # texts encoded with gradient: machine-independent
        try:
            return f"{float(r['compute:texts w/ grad']) / float(base['compute:texts w/ grad']):.2f}"
        except (TypeError, ValueError, ZeroDivisionError, KeyError):
            return ""

    print("\n| option | seeds | dev nDCG@10 | Δ [95% CI] | Holm p |"
          + (" verdict |" if verdicts else "") + " grad texts × baseline | fit × baseline |")
    print("|---|--:|--:|---|--:|" + ("---|" if verdicts else "") + "--:|--:|")
    for r in rows:  # a one-seed row: compare borrowed its seed noise from the baseline's seeds
        r["one_seed"] = "True" if r["baseline"] != "True" and r["n_seeds"] == "1" else ""
    for r in rows:
        if r["baseline"] == "True":
            print(f"| baseline (`hnm train`) | {r['n_seeds']} | {float(r['mean']):.4f} | "
                  "baseline | |" + (" |" if verdicts else "") + " 1.00 | 1.00 |")
            continue
        below = r["ci_high"] != "" and float(r["ci_high"]) < 0 and float(r["p_holm"]) < 0.05
        said = ("**below the baseline**" if below else
                "can't tell (1 seed)" if r.get("one_seed") else "not below")
        verdict = f" {said} |" if verdicts else ""
        fit = r.get("compute:fit × baseline") or ""
        print(f"| `{r['group']}` | {r['n_seeds']} | {float(r['mean']):.4f} | "
              f"{float(r['delta']):+.4f} [{float(r['ci_low']):+.4f}, {float(r['ci_high']):+.4f}]"
              + ("†" if r.get("one_seed") else "")
              + f" | {float(r['p_holm']):.3f} |{verdict} {grad(r)} | "
              f"{fit and f'{float(fit):.2f}'} |")
    for option, message in sorted(refused.items()):
        args = recipes[option] if recipes else overrides(option)
        why = message.split(";")[0].split(". ")[0]  # the first clause; the log has the rest
        cells = [f"`{' '.join(args)}`", "–", "–", f"refuses to start: {why}", "",
                 *([""] if verdicts else []), "", ""]
        print("| " + " | ".join(cells) + " |")
    if base is not None and any(r.get("one_seed") for r in rows):
        print(f"\n† one seed: Δ is that seed against the baseline's mean; `hnm compare` takes the "
              f"seed-to-seed spread the baseline's {base['n_seeds']} seeds show as this run's too "
              f"(its CI and p: t-test over queries and seeds, {int(base['n_seeds']) - 1} df for "
              "the seed part)." if int(base["n_seeds"]) > 1 else
              "\n† one seed in the baseline too: the test is over queries only.")
    print(f"\n(comparison: {cmp})")


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    r.add_argument("--only", nargs="*", default=[])
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "run":
        run(args.out, args.seeds, args.only, extra)
    else:
        table(args.out)


if __name__ == "__main__":
    main()
