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
given folders and grouped by the config values that differ between them; seed, paths, loggers,
the W&B group and the learning-curve settings never define a group, so runs that differ only in
seed are replicates. Groups evaluated on different splits, datasets or query subsets are refused
(exit 2). Each metric is shown as mean ± std over a group's seeds, on the split the runs were
evaluated on (every output names it). Each group is tested against the baseline query by query
(per-query metrics averaged over seeds, paired by query id) on nDCG@10, Recall@100 and MRR@10
(and --metric): a paired t-test with Holm's adjustment over the groups, a randomisation test, a
95% bootstrap interval of the mean difference, the minimum detectable difference at 80% power
with these seeds and queries, and the seeds per group that would detect the observed one.
Warnings (terminal and compare.md) name groups with other seeds than the baseline, a zero-shot
metric that differs beyond evaluation noise, other training data, other conditions than the
strategy (any config value outside sampler/miner/negatives/loss/poison) or another exposure. A
compute table gives per group steps, pairs, texts encoded with gradient, texts the strategy and
the evaluation ran without gradient (whether encoded or served from the cache), fit, total and
CPU seconds, and the machine's load, with a caveat when wall times are not comparable.
Writes to --out (default: <first folder>/compare-<time>/; never overwrites anything):
compare.md, compare.csv (per group, dataset and metric), compare.png (forest plot of the Δ),
curves.png (learning curves, each group's training loss beside the baseline's), compare.html (a
self-contained report with a per-query view), and a job_type=compare W&B run when the runs used
W&B. Runs whose status.json says they did not finish are left out, each with a note."""


def parser() -> argparse.ArgumentParser:
    from hnm.compare.comparability import ZERO_SHOT_TOL
    from hnm.compare.wandb_log import MODES

    p = argparse.ArgumentParser(prog="hnm compare", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, metavar="RUN_OR_SWEEP_FOLDER")
    p.add_argument("--baseline", default=None,
                   help="baseline group: its number, its label, or a unique part of the label "
                        "(default: the group without sampler/miner/negatives, else group 1)")
    p.add_argument("--metric", default="ndcg@10",
                   help="main metric: first in the tables and tests; nDCG@10, Recall@100 and "
                        "MRR@10 are tested too (default: ndcg@10)")
    p.add_argument("--stage", default="final",
                   help="final: the evaluation after training, on the runs' eval split (its "
                        "name, e.g. test or dev, is accepted too); zero_shot: the starting "
                        "model's (default: final)")
    p.add_argument("--ignore", action="append", default=[], metavar="KEY",
                   help="also ignore this config key (and its sub-keys) when grouping; "
                        "repeatable, e.g. --ignore trainer.max_steps")
    p.add_argument("--resamples", type=int, default=10_000,
                   help="random sign flips of the randomisation test (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default: 0)")
    p.add_argument("--zero-shot-tol", type=float, default=ZERO_SHOT_TOL,
                   help="warn when a group's zero-shot metric differs from the baseline's by "
                        f"more than this (default: {ZERO_SHOT_TOL:g})")
    p.add_argument("--wandb", default="auto", choices=MODES,
                   help="log the comparison to W&B as a job_type=compare run in the runs' "
                        "project and group: auto (when the runs used W&B, in their mode), "
                        "off, offline, online (default: auto)")
    p.add_argument("--no-texts", action="store_true",
                   help="compare.html's per-query view without query and document texts "
                        "(they are read from the runs' dataset otherwise)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (must not exist or be empty)")
    return p


def output_folder(args: argparse.Namespace) -> Path:
    from hnm.runinfo import claim

    out = args.out or args.folders[0] / f"compare-{dt.datetime.now():%Y%m%d-%H%M%S}"
    claim(out, "a comparison folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def resolve_stage(stage: str, runs: list) -> str:
    """``final`` or ``zero_shot``; the runs' split name means ``final``."""
    from hnm.compare.runs import FINAL
    from hnm.errors import ConfigError

    splits = {r.split for r in runs}
    if stage in (FINAL, "zero_shot") or stage in splits:
        return stage if stage == "zero_shot" else FINAL
    raise ConfigError(f"--stage {stage!r}: expected final, zero_shot or the runs' split "
                      f"({', '.join(sorted(splits))})")


def compare(args: argparse.Namespace) -> Path:
    """Run the comparison; returns the output folder."""
    from hnm.compare.comparability import comparability_warnings, refuse_incomparable
    from hnm.compare.compute import compute_table
    from hnm.compare.grouping import IGNORED, group_runs, pick_baseline
    from hnm.compare.outputs import command_line, figures_for, to_wandb, write, write_report
    from hnm.compare.render import (
        DELTA_HEADERS,
        cells,
        compute_markdown,
        csv_text,
        delta_note,
        delta_rows,
        headers,
        markdown_table,
        print_wide,
        rich_table,
        stage_title,
    )
    from hnm.compare.runs import find_runs
    from hnm.compare.summary import metric_columns, summarize, tested_metrics
    from hnm.errors import ConfigError

    if args.resamples < 1:
        raise ConfigError(f"--resamples must be >= 1; got {args.resamples}")
    notes: list[str] = []
    runs = find_runs(args.folders, notes)
    print_skipped(notes)
    stage = resolve_stage(args.stage, runs)
    groups = group_runs(runs, (*IGNORED, *args.ignore))
    baseline = pick_baseline(groups, args.baseline)
    refuse_incomparable(groups, baseline, stage)
    split = runs[0].split
    rows = summarize(groups, baseline, stage, args.metric, args.resamples, args.seed)
    if not rows:
        have = sorted({k.split("/")[0] for r in runs for k in r.metrics if k.count("/") == 2})
        raise ConfigError(f"--stage {args.stage!r}: the runs have no metric of that stage; "
                          f"stages found: {', '.join(have) or 'none'}")
    if not any(f"{stage}/{args.metric}" in r.metrics for r in rows):
        names = sorted({c.split("/")[1] for r in rows for c in r.metrics})
        raise ConfigError(f"--metric {args.metric!r} is not among the runs' "
                          f"{stage_title(stage, split)} metrics: {', '.join(names)}")
    columns = metric_columns(groups, stage, args.metric)
    warnings = comparability_warnings(groups, baseline, args.metric, args.zero_shot_tol, stage)
    compute = compute_table(groups, baseline)
    out = output_folder(args)
    where = stage_title(stage, split)
    title = (f"{where} metrics of {len(runs)} runs in {len(groups)} groups (mean ± std over "
             f"seeds); baseline: {baseline + 1}: {groups[baseline].label}")
    head, body = headers(columns, where), [cells(r, columns) for r in rows]
    deltas = delta_rows(rows)
    print_wide(rich_table(head, body, title))
    if deltas:
        print_wide(rich_table(DELTA_HEADERS, deltas, f"Δ against the baseline ({where} split)"))
        print(delta_note(rows))
    print_wide(rich_table(compute.headers, compute.rows, "Compute per group (mean over runs)"))
    if compute.caveat:
        print(compute.caveat)
    if warnings:
        print("\n" + "\n".join(warnings), file=sys.stderr)
    md = [f"# {title}", "", f"Split: **{split}** (stage: {stage}).", "",
          *markdown_table(head, body)]
    if deltas:
        md += ["", f"## Δ against the baseline ({where} split)", "",
               *markdown_table(DELTA_HEADERS, deltas), "", delta_note(rows)]
    md += compute_markdown(compute)
    if warnings:
        md += ["", "## Warnings", "", *[f"> {w}" for w in warnings]]
    csv_body = csv_text(rows, columns, split, stage, compute)
    write(out, "compare.md", "\n".join(md) + "\n")
    write(out, "compare.csv", csv_body)
    figures = figures_for(args.metric, groups, baseline, rows, stage, split, out)
    command = command_line(args.folders)
    html = write_report(out, title, split, stage, command, groups, baseline, rows,
                        (head, body), compute, warnings, args.metric, not args.no_texts)
    missing = [str(r.path) for r in runs for d in r.datasets(stage)
               if r.per_query(stage, d) is None]
    if missing:
        print(f"no {where} per-query file (so no paired test) in: "
              + ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    written = ["compare.md", "compare.csv", *[f.name for f in figures]] + (
        [html.name] if html else [])
    print(f"comparison written to {out} ({', '.join(written)})")
    to_wandb(args.wandb, groups, out, csv_body, figures, {
        "split": split, "stage": stage, "baseline": groups[baseline].label,
        "metric": args.metric, "metrics": tested_metrics(args.metric), "command": command})
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
