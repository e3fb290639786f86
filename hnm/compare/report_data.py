"""The comparison as one JSON-able dict: what ``compare.html`` shows and what ``hnm compare``
sends to W&B (see :func:`hnm.compare.html.write_html` for the page)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from hnm.compare.compute import ComputeTable
from hnm.compare.grouping import Group
from hnm.compare.plot import LOSS_NOTE, loss_band, val_band
from hnm.compare.runs import RunRecord
from hnm.compare.summary import SummaryRow

log = logging.getLogger(__name__)
TOP = 10
DOC_CHARS = 400


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def forest(rows: Sequence[SummaryRow], stage: str) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        for m, t in r.tests.items():
            res, q = t.result, t.paired
            base = next((b for b in rows if b.baseline and b.dataset == r.dataset), None)
            zs = base.metrics.get(f"zero_shot/{m}", (math.nan, 0))[0] if base else math.nan
            ref = base.metrics.get(f"{stage}/{m}", (math.nan, 0))[0] if base else math.nan
            out.append({"dataset": r.dataset, "metric": m, "group": r.number,
                        "label": r.group.label, "delta": _f(res.delta if res else None),
                        "ci_low": _f(res.ci_low if res else None),
                        "ci_high": _f(res.ci_high if res else None),
                        "p": _f(res.p if res else None), "p_holm": _f(t.p_holm),
                        "test": res.test if res else "",
                        "p_queries": _f(q.p_ttest if q else None),
                        "p_randomisation": _f(q.p_random if q else None),
                        "mde": _f(res.mde if res else None),
                        "seeds_needed": res.seeds_needed if res else None,
                        "seeds_note": res.seeds_note if res else "",
                        "queries": res.n if res else None,
                        "seed_deltas": [_f(d) for d in t.seed_deltas],
                        "zero_shot_delta": _f(zs - ref), "note": t.note})
    return out


def _bands(groups: Sequence[Group], band) -> list[dict[str, Any]]:
    out = []
    for i, g in enumerate(groups):
        steps, mean, std = band(g)
        if steps.size:
            out.append({"number": i + 1, "label": g.label, "steps": steps.tolist(),
                        "mean": mean.tolist(), "std": std.tolist()})
    return out


def dataset_texts(run: RunRecord) -> Any:
    """The run's dataset, to show query and document texts; None (with a log line) when it
    cannot be loaded here (a BEIR folder on another machine, a config naming code outside
    hnm)."""
    try:
        from hnm.config_check import instantiate
        from hnm.eval.targets import run_config

        cfg = run_config(run.path)
        if cfg is None:
            return None
        data = instantiate(cfg.data.source, "data.source")
        if cfg.data.get("name"):
            data.name = str(cfg.data.name)
        return data
    except Exception as err:  # noqa: BLE001 - the page shows ids instead of texts
        log.warning("per-query view without texts: cannot load the dataset of %s (%s)",
                    run.path, err)
        return None


def per_query_view(rows: Sequence[SummaryRow], stage: str, metric: str, split: str,
                   with_texts: bool = True) -> dict[str, Any] | None:
    """Per query: its text, relevant documents and each group's value and top 10 (from the
    group's first run), for the first dataset."""
    from hnm.compare.files import RUN, stage_file
    from hnm.compare.stats import seed_mean
    from hnm.compare.summary import per_run
    from hnm.eval.metrics import trec_order
    from hnm.eval.run_io import read_trec_run

    if not rows:
        return None
    dataset = rows[0].dataset
    ds_rows = [r for r in rows if r.dataset == dataset]
    values: dict[str, dict[str, float]] = {}
    top: dict[str, Any] = {}
    for r in ds_rows:
        runs = per_run(r.group.runs, stage, dataset, metric)
        if runs is None:
            continue
        for q, v in seed_mean(runs).items():
            values.setdefault(q, {})[str(r.number)] = v
        first = sorted(r.group.runs, key=lambda x: str(x.seed))[0]
        stage_name = first.file_stage(stage)
        path = next((p for p in (stage_file(first.path, stage_name, RUN, dataset),
                                 stage_file(first.path, stage_name, RUN))
                     for p in (p, p.with_name(p.name + ".gz")) if p.is_file()), None)
        if path is not None:
            trec = read_trec_run(path)
            top[str(r.number)] = {"seed": first.seed, "lists": {
                q: [d for d, _ in trec_order(docs)[:TOP]] for q, docs in trec.items()}}
    if not values:
        return None
    data = dataset_texts(rows[0].group.runs[0]) if with_texts else None
    qrels = data.qrels.get(split, {}) if data is not None else {}
    wanted = {d for lists in top.values() for ls in lists["lists"].values() for d in ls}
    wanted |= {d for q in values for d in qrels.get(q, {})}
    docs = {}
    if data is not None:
        docs = {d: data.doc_text(d)[:DOC_CHARS] for d in sorted(wanted) if d in data.corpus}
    queries = [{"qid": q, "text": data.queries.get(q, "") if data is not None else "",
                "relevant": dict(qrels.get(q, {})), "values": values[q]}
               for q in sorted(values)]
    return {"dataset": dataset, "metric": metric, "split": split, "queries": queries,
            "top": top, "docs": docs}


def report(title: str, split: str, stage: str, command: str, created: str,
           groups: Sequence[Group], baseline: int, rows: Sequence[SummaryRow],
           table: tuple[list[str], list[list[str]]], compute: ComputeTable,
           warnings: Sequence[str], metric: str, metrics: Sequence[str],
           with_texts: bool = True) -> dict[str, Any]:
    """The whole comparison (the schema :func:`hnm.compare.html.write_html` renders)."""
    val_splits = {str(r.config.get("eval.val_split")) for g in groups for r in g.runs
                  if (r.path / "val_curve.csv").is_file()}
    return {
        "title": title, "split": split, "stage": stage, "created": created,
        "command": command, "metrics": list(metrics),
        "groups": [{"number": i + 1, "label": g.label, "baseline": i == baseline,
                    "strategy": g.runs[0].context.get("strategy", ""),
                    "seeds": sorted((r.seed for r in g.runs), key=str)}
                   for i, g in enumerate(groups)],
        "table": {"columns": table[0], "rows": table[1]},
        "forest": forest(rows, stage),
        "compute": {"columns": compute.headers, "rows": compute.rows,
                    "caveat": compute.caveat},
        "warnings": list(warnings),
        "curves": {"metric": metric, "split": ", ".join(sorted(val_splits)) or None,
                   "note": "validation metric during training (eval.every_n_steps), "
                           "mean ± std over seeds",
                   "groups": _bands(groups, lambda g: val_band(g, metric))},
        "losses": {"note": LOSS_NOTE, "groups": _bands(groups, loss_band)},
        "per_query": per_query_view(rows, stage, metric, split, with_texts),
    }
