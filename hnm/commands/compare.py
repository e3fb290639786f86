"""``hnm compare RUN_OR_SWEEP_FOLDER…``: runs grouped by their differing config values, metrics
as mean ± std over seeds, paired per-query tests against a baseline group, a PNG plot and
Markdown/CSV tables."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from hnm.errors import HnmError

DESCRIPTION = """\
Compare finished runs. Runs (folders with metrics.json and .hydra/) are found in or below the
given folders and grouped by the config values that differ between them; seed, paths, loggers
and hydra settings never define a group, so runs that differ only in seed are replicates.
Each metric is shown as mean ± std over a group's seeds. Each group is tested against the
baseline group query by query (per-query metrics averaged over seeds first, then paired by
query id): a paired t-test and a paired randomisation (sign-flip) test, with a 95% bootstrap
interval of the mean difference. Writes compare.md, compare.csv and compare.png to --out
(default: <first folder>/compare-<time>/); never overwrites anything. Runs whose status.json
says they did not finish (failed, interrupted, still running) are left out, each with a note;
runs from before status files existed (metrics.json, no status.json) count. A table of the
compute each group used follows, and a warning names every group that differs from the
baseline in conditions rather than strategy (data, encoder, dropout, batch size, schedule,
evaluation: any config value outside sampler/miner/negatives/loss/poison) or that trained on a
different number of pairs or steps."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hnm compare", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, metavar="RUN_OR_SWEEP_FOLDER")
    p.add_argument("--baseline", default=None,
                   help="baseline group: its number, its label, or a unique part of the label "
                        "(default: the group without sampler/miner/negatives, else group 1)")
    p.add_argument("--metric", default="ndcg@10",
                   help="metric of the paired tests and the plot (default: ndcg@10)")
    p.add_argument("--stage", default="test",
                   help="evaluation stage of the metric keys: test or zero_shot (default: test)")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help="also ignore this config key (and its sub-keys) when grouping; "
                        "repeatable, e.g. --ignore trainer.max_steps")
    p.add_argument("--resamples", type=int, default=10_000,
                   help="random sign flips of the randomisation test (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (must not exist or be empty)")
    return p


def output_folder(args: argparse.Namespace) -> Path:
    from hnm.runinfo import claim

    out = args.out or args.folders[0] / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    claim(out, "a comparison folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def compare(args: argparse.Namespace) -> Path:
    """Run the comparison; returns the output folder."""
    from hnm.compare.conditions import report_lines
    from hnm.compare.grouping import IGNORED, group_runs, pick_baseline
    from hnm.compare.plot import plot_comparison
    from hnm.compare.render import csv_text, markdown, print_wide, rich_table
    from hnm.compare.runs import find_runs
    from hnm.compare.summary import metric_columns, summarize
    from hnm.errors import ConfigError
    from hnm.runinfo import claim

    if args.resamples < 1:
        raise ConfigError(f"--resamples must be >= 1; got {args.resamples}")
    notes: list[str] = []
    runs = find_runs(args.folders, notes)
    print_skipped(notes)
    groups = group_runs(runs, (*IGNORED, *args.ignore))
    baseline = pick_baseline(groups, args.baseline)
    rows = summarize(groups, baseline, args.stage, args.metric, args.resamples, args.seed)
    if not rows:
        have = sorted({k.split("/")[0] for r in runs for k in r.metrics if k.count("/") == 2})
        raise ConfigError(f"--stage {args.stage!r}: the runs have no metric of that stage; "
                          f"stages found: {', '.join(have) or 'none'}")
    if not any(f"{args.stage}/{args.metric}" in r.metrics for r in rows):
        names = sorted({c.split("/")[1] for r in rows for c in r.metrics})
        raise ConfigError(f"--metric {args.metric!r} is not among the runs' {args.stage} "
                          f"metrics: {', '.join(names)}")
    columns = metric_columns(groups, args.stage, args.metric)
    out = output_folder(args)
    title = (f"{args.stage} metrics of {len(runs)} runs in {len(groups)} groups (mean ± std over "
             f"seeds); baseline: {baseline + 1}: {groups[baseline].label}")
    print_wide(rich_table(rows, columns, args.metric, title))
    warnings, compute = report_lines(groups, baseline)
    print("\n".join(compute[1:]))
    if warnings:
        print("\n" + "\n".join(warnings), file=sys.stderr)
    text_md = markdown(rows, columns, args.metric, title) + "\n".join(compute) + "\n"
    if warnings:
        text_md += "\n" + "\n".join(f"> {w}" for w in warnings) + "\n"
    for name, text in (("compare.md", text_md),
                       ("compare.csv", csv_text(rows, columns))):
        claim(out / name, name).write_text(text, encoding="utf-8")
    plot_comparison(rows, groups, args.stage, args.metric, claim(out / "compare.png", "plot"))
    missing = [str(r.path) for r in runs for d in r.datasets(args.stage)
               if r.per_query(args.stage, d) is None]
    if missing:
        print(f"no {args.stage} per-query file (so no paired test) in: "
              + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    print(f"comparison written to {out} (compare.md, compare.csv, compare.png)")
    return out


def print_skipped(notes: list[str], shown: int = 10) -> None:
    """One line per run left out (unfinished or failed), at most ``shown``, then a count."""
    if not notes:
        return
    print(f"{len(notes)} run(s) left out (not finished):")
    for line in notes[:shown]:
        print(f"  {line}")
    if len(notes) > shown:
        print(f"  … and {len(notes) - shown} more")


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        compare(args)
    except HnmError as err:
        print(f"hnm compare: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
