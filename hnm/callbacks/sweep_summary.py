"""Hydra callback: at the end of a multirun, print one table of every job (its metrics, or why
it failed) and exit non-zero when a job failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hnm.compare.runs import natural_key
from hnm.runinfo import STATUS_FILE, read_status

# exit status of a sweep with failed jobs: 2 when every failure was the user's input (a bad
# knob, a missing file: the status a single run exits with), else 1
EXIT_USER_ERRORS, EXIT_FAILED = 2, 1


def _overrides(run: Path) -> list[str]:
    overrides_file = run / ".hydra" / "overrides.yaml"
    if not overrides_file.exists():
        return []
    import yaml

    return [str(o) for o in yaml.safe_load(overrides_file.read_text()) or []]


def job_folders(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders: those with ``metrics.json``, ``status.json`` or ``.hydra/``."""
    found = {p.parent for name in ("metrics.json", STATUS_FILE) for p in sweep_dir.glob(f"**/{name}")}
    found |= {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    return sorted(found, key=natural_key)


def collect_jobs(sweep_dir: Path, bare_is_unfinished: bool = True) -> list[dict[str, Any]]:
    """One row per job folder below ``sweep_dir``: ``run``, ``overrides`` (joined;
    ``override_list``: as a list), ``status``
    (finished / failed / interrupted / running / unknown), ``error`` (one line, when not
    finished), ``user_error`` and, for finished runs, the metrics of ``metrics.json``.

    A folder without ``status.json`` (written before status files existed) counts as finished
    when it holds ``metrics.json``; one with neither (only ``.hydra/``) is a job that did not
    finish, or, with ``bare_is_unfinished=False`` (``hnm mine``, whose jobs write no
    metrics), is left out."""
    rows = []
    for run in job_folders(sweep_dir):
        status = read_status(run)
        metrics_file = run / "metrics.json"
        if status is None and not metrics_file.is_file() and not bare_is_unfinished:
            continue
        state = status["state"] if status else ("finished" if metrics_file.is_file() else "unknown")
        overrides = _overrides(run)
        row: dict[str, Any] = {"run": str(run.relative_to(sweep_dir)) or ".",
                               "overrides": " ".join(overrides), "override_list": overrides,
                               "status": state}
        if state == "finished" and metrics_file.is_file():
            row.update(json.loads(metrics_file.read_text()))
        else:
            reason = (status or {}).get("error") or ("no metrics.json: the job did not finish"
                                                     if state != "finished" else
                                                     "no metrics.json")
            row["error"] = str(reason)
            row["user_error"] = bool((status or {}).get("user_error", False))
            if state == "finished":
                row["status"] = "unknown"
        rows.append(row)
    return rows


def collect_runs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per finished run below ``sweep_dir`` (its overrides and metrics)."""
    return [r for r in collect_jobs(sweep_dir) if r["status"] == "finished"]


def shared_overrides(rows: list[dict[str, Any]]) -> list[str]:
    """The overrides every job has (the table shows each job's others)."""
    if len(rows) < 2:
        return []
    first, *rest = [r["override_list"] for r in rows]
    return [o for o in first if all(o in other for other in rest)]


def sweep_exit_code(rows: list[dict[str, Any]]) -> int:
    """0 when every job finished; :data:`EXIT_USER_ERRORS` when all failed jobs failed on the
    user's input; :data:`EXIT_FAILED` otherwise."""
    failed = [r for r in rows if r["status"] != "finished"]
    if not failed:
        return 0
    return EXIT_USER_ERRORS if all(r.get("user_error") for r in failed) else EXIT_FAILED


def summarize_sweep(sweep_dir: Path, rows: list[dict[str, Any]]) -> str | None:
    """The 80-column summary of a training sweep's finished runs (also written to
    ``summary.md``/``summary.csv`` in the sweep folder); None when no run finished."""
    from hnm.compare import sweep_text
    from hnm.compare.grouping import group_runs
    from hnm.compare.runs import find_runs
    from hnm.dashboards import sync_line
    from hnm.errors import HnmError
    from hnm.runinfo import claim

    try:
        runs = find_runs([sweep_dir])
    except HnmError:
        return None
    groups = group_runs(runs)
    plain = [i for i, g in enumerate(groups) if g.is_plain]
    baseline = plain[0] if len(plain) == 1 else None  # a sweep of one plain group and others
    lines = sweep_text.group_lines(groups, baseline)
    splits = sorted({r.split for r in runs})
    common = shared_overrides(rows)
    failed = [{**r, "overrides": " ".join(o for o in r["override_list"] if o not in common)}
              for r in rows if r["status"] != "finished"]
    commands = ["# Δ per group with CIs, figures, compare.html:", f"hnm compare {sweep_dir}"]
    if any(sweep_dir.glob("**/wandb/offline-run-*")):
        commands += ["# upload the runs to W&B:",
                     sync_line([f"{sweep_dir}/*/wandb/offline-run-*"])]
    split = "/".join(splits)
    text = sweep_text.text(sweep_dir, split, lines, len(rows), failed, commands)
    for name, body in (("summary.md", sweep_text.markdown(sweep_dir, split, lines, failed,
                                                           commands)),
                       ("summary.csv", sweep_text.csv_text(split, lines))):
        try:
            claim(sweep_dir / name, name).write_text(body, encoding="utf-8")
        except HnmError:
            text += f"({name} exists in the sweep folder; left as it is)\n"
    return text


class SweepSummary(Callback):
    """At the end of a training sweep, prints its summary (groups with mean ± std over seeds,
    readable in an 80-column log, the jobs that did not finish, and the next commands:
    ``hnm compare`` and ``wandb sync``) and saves it as ``summary.md``/``summary.csv`` in the
    sweep folder; exits with :func:`sweep_exit_code` when a job failed (Hydra calls the
    end-of-sweep callbacks last first, so this one, listed first, runs after the others)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        task = config.get("task_name", "train")
        rows = collect_jobs(sweep_dir, task != "mine")
        if not rows:
            print(f"sweep {sweep_dir}: no run finished")
            return
        text = summarize_sweep(sweep_dir, rows) if task == "train" else None
        if text is not None:
            print(text, end="")
        else:
            self._jobs_table(sweep_dir, rows)
        code = sweep_exit_code(rows)
        if code:
            failed = [r for r in rows if r["status"] != "finished"]
            print(f"sweep {sweep_dir}: {len(failed)} of {len(rows)} jobs did not finish")
            if text is None:
                for r in failed:
                    print(f"  {r['run']} ({r['overrides']}): {r['status']}: {r['error']}")
            raise SystemExit(code)

    @staticmethod
    def _jobs_table(sweep_dir: Path, rows: list[dict[str, Any]]) -> None:
        """One line per job (``hnm mine`` sweeps, or a training sweep where no run finished)."""
        print(f"sweep {sweep_dir}: {len(rows)} jobs")
        for r in rows:
            state = r["status"] + (f": {r.get('error')}" if r["status"] != "finished" else "")
            print(f"  {r['run']}: {r['overrides'] or '-'}: {state}")
