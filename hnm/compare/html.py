"""``compare.html``: the comparison as one self-contained page a person can open offline.

The page holds the forest plots (Δ against the baseline with CIs, per-seed points, p-values),
the results table, the learning curves, the training losses beside the baseline, the compute
table, the warnings, and a per-query view (baseline vs a group, with each group's top 10 for a
chosen query). Plotly's JavaScript is embedded inline (no CDN); the page's own script and style
(``report.js``, ``report.css`` beside this file) are read at render time and inlined too.

Safety: every piece of text from the report is HTML-escaped where it is written into the page,
and the data travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>``
and ``&`` written as ``\\u003c``/``\\u003e``/``\\u0026``, so no text can close the block; the
script builds the DOM with ``textContent``."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from hnm.compare.html_figures import colors, curves_figure, losses_figure
from hnm.compare.html_forest import forest_figures

HERE = Path(__file__).parent


def _clean(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats -> None, numpy scalars/arrays -> Python values."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def json_script(element_id: str, data: Any) -> str:
    """``data`` as a JSON ``<script>`` block that no string inside it can end early."""
    text = json.dumps(_clean(data), ensure_ascii=False, separators=(",", ":"))
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return f'<script type="application/json" id="{escape(element_id)}">{text}</script>'


def _table(table: dict | None, caption: str = "") -> str:
    if not table or not table.get("columns"):
        return '<p class="empty">no table in this comparison</p>'
    head = "".join(f"<th>{escape(str(c))}</th>" for c in table["columns"])
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in table.get("rows") or [])
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _header(report: dict, split: str, color: dict[str, str]) -> str:
    test = split.lower() == "test"
    badge = (f'<span class="split split-test">split: {escape(split)}</span>' if test else
             f'<span class="split split-other">split: {escape(split)} (not test)</span>')
    banner = "" if test else (
        f'<p class="split-banner">These numbers were computed on the <b>{escape(split)}</b> '
        "split, not on a held-out test split: do not report them as test results.</p>")
    warnings = report.get("warnings") or []
    warn = "" if not warnings else (
        '<div class="warnings" role="alert"><h2>⚠ Warnings</h2><ul>'
        + "".join(f"<li>{escape(str(w))}</li>" for w in warnings) + "</ul></div>")
    chips = "".join(
        f'<li><span class="swatch" style="background:{escape(color.get(str(g.get("number")), "#999"))}">'
        f'</span>#{escape(str(g.get("number")))} {escape(str(g.get("label", "")))}'
        f'{" <em>(baseline)</em>" if g.get("baseline") else ""}'
        f' <span class="muted">seeds {escape(", ".join(map(str, g.get("seeds") or [])) or "-")}'
        "</span></li>" for g in report.get("groups") or [])
    meta = " · ".join(x for x in (
        f"created {escape(str(report['created']))}" if report.get("created") else "",
        f"<code>{escape(str(report['command']))}</code>" if report.get("command") else "") if x)
    return (f'<header><div class="badges">{badge}</div>'
            f"<h1>{escape(str(report.get('title') or 'comparison'))}</h1>"
            f'<p class="meta">{meta}</p>{banner}{warn}'
            f'<ul class="groups">{chips}</ul>' + _nav() + "</header>")


def _nav() -> str:
    items = [("forest", "Δ vs baseline"), ("results", "results"), ("curves", "learning curves"),
             ("losses", "training losses"), ("compute", "compute"), ("per-query", "per query")]
    return "<nav>" + " ".join(f'<a href="#{a}">{t}</a>' for a, t in items) + "</nav>"


def _sections(report: dict, split: str, figures: dict[str, Any]) -> str:
    s = escape(split)
    forest = "".join(f'<div class="plot" id="{k}"></div>' for k in figures if k.startswith("forest"))
    curves = report.get("curves") or {}
    losses = report.get("losses") or {}
    compute = report.get("compute") or {}
    pq = report.get("per_query") or {}
    b = next((g for g in report.get("groups") or [] if g.get("baseline")), None)
    base = f"#{b.get('number')} {b.get('label', '')}" if b else ""
    parts = [
        f'<section id="forest"><h2>Δ against the baseline <span class="tag">{s}</span></h2>'
        '<p class="help">Each row is a group: ● mean Δ over seeds with the 95% CI of the test '
        "named at its right (in hnm compare: a t-test over queries and seeds), "
        "○ each seed's Δ, ◇ the zero-shot starting model (▶/◀ at the edge when it lies far "
        "outside). The line at 0 is the baseline. Hover a point for the minimum detectable Δ and "
        "the seeds needed.</p>"
        + (forest or '<p class="empty">no group was tested against a baseline</p>') + "</section>",
        f'<section id="results"><h2>Results <span class="tag">{s}</span></h2>'
        + _table(report.get("table")) + "</section>",
        '<section id="curves"><h2>Learning curves</h2>'
        + (f'<p class="help">{escape(str(curves["note"]))}</p>' if curves.get("note") else "")
        + ('<div class="plot" id="curves-plot"></div>' if "curves-plot" in figures else
           '<p class="empty">no learning curves were recorded (eval.every_n_steps)</p>')
        + "</section>",
        '<section id="losses"><h2>Training losses, each group beside the baseline</h2>'
        '<p class="note">⚠ ' + escape(str(losses.get("note") or "training losses are not "
                                             "comparable across strategies")) + "</p>"
        + f'<p class="help">Each panel: one group (solid, in its colour) and the baseline '
        f"{escape(base)} (dotted grey), mean ± std over seeds.</p>"
        + ('<div class="plot" id="losses-plot"></div>' if "losses-plot" in figures else
           '<p class="empty">no training losses were recorded</p>') + "</section>",
        '<section id="compute"><h2>Compute</h2>' + _table(compute)
        + (f'<p class="note">⚠ {escape(str(compute["caveat"]))}</p>' if compute.get("caveat")
           else "") + "</section>",
        '<section id="per-query"><h2>Per query'
        + (f' <span class="tag">{escape(str(pq.get("metric", "")))} · '
           f'{escape(str(pq.get("dataset", "")))} · {escape(str(pq.get("split", split)))}</span>'
           if pq else "") + '</h2><div id="pq-root">'
        + ("" if pq.get("queries") else '<p class="empty">no per-query data in this comparison'
           "</p>") + "</div></section>"]
    return "<main>" + "".join(parts) + "</main>"


def render(report: dict) -> str:
    """The page's HTML text."""
    from plotly.offline import get_plotlyjs

    report = _clean(report)
    split = str(report.get("split") or "unknown split")
    color = colors(report.get("groups") or [])
    figures: dict[str, Any] = {f"forest-{i}": f["figure"]
                               for i, f in enumerate(forest_figures(report, split, color))}
    for key, fig in (("curves-plot", curves_figure(report, color)),
                     ("losses-plot", losses_figure(report, color))):
        if fig is not None:
            figures[key] = fig
    title = f"{report.get('title') or 'comparison'} · split: {split}"
    css = (HERE / "report.css").read_text(encoding="utf-8")
    js = (HERE / "report.js").read_text(encoding="utf-8")
    body_class = "split-is-test" if split.lower() == "test" else "split-is-other"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f'<body class="{body_class}">' + _header(report, split, color)
        + _sections(report, split, figures)
        + json_script("hnm-data", {"report": report, "figures": figures, "colors": color,
                                   "split": split})
        + f'<script type="text/javascript">{get_plotlyjs()}</script>'
        + f'<script type="text/javascript">{js}</script></body></html>\n')


def write_html(report: dict, path: Path) -> Path:
    """Write ``report`` (the comparison dict built by ``hnm compare``) as one self-contained
    HTML file at ``path``; return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report), encoding="utf-8")
    return path
