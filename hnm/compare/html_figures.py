"""The Plotly figures of ``compare.html`` besides the forest plot (``html_forest``), built from the
report dict (see :func:`hnm.compare.html.write_html`): the learning curves, and the training
losses as small multiples, each group beside the baseline; and the helpers both modules share.

Each figure is returned as a plain JSON-able dict (``data``/``layout``) that the page draws with
``Plotly.newPlot``. Mean ± std bands are layout shapes, so that a figure holds exactly one trace
per group. Text that Plotly renders (labels) is HTML-escaped: Plotly reads a few tags in text."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

BASELINE_COLOR = "#3b3b3b"


def colors(groups: list[dict]) -> dict[str, str]:
    """Group number (as str) -> colour; the baseline is dark grey, the others follow D3's."""
    palette = qualitative.D3
    others = [g for g in groups if not g.get("baseline")]
    out = {str(g["number"]): palette[i % len(palette)] for i, g in enumerate(others)}
    out.update({str(g["number"]): BASELINE_COLOR for g in groups if g.get("baseline")})
    return out


def num(x: Any, sign: bool = True) -> str:
    """``+0.0046`` (``0.0046`` without ``sign``), or ``-`` when missing."""
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def label(g: dict | None, number: Any, limit: int = 36) -> str:
    """``#2 +sampler=ngame``, cut to ``limit`` characters and escaped for Plotly."""
    text = f"#{number} {(g or {}).get('label', '')}".strip()
    return html.escape(text if len(text) <= limit else text[: limit - 1] + "…")


def as_dict(fig: go.Figure) -> dict:
    """The figure as plain JSON values (numpy arrays and NaN converted by Plotly)."""
    return json.loads(pio.to_json(fig, validate=False))


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i: i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def finite(xs: list) -> list[float]:
    """The finite numbers of ``xs``."""
    return [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]


def _band(c: dict, color: str) -> dict | None:
    steps, mean, std = c.get("steps") or [], c.get("mean") or [], c.get("std") or []
    pts = [(s, m, d) for s, m, d in zip(steps, mean, std) if finite([s, m, d]) == [s, m, d]]
    if len(pts) < 2:
        return None
    up = " L".join(f"{s},{m + d}" for s, m, d in pts)
    down = " L".join(f"{s},{m - d}" for s, m, d in reversed(pts))
    return {"type": "path", "path": f"M{up} L{down} Z", "fillcolor": _rgba(color, 0.18),
            "line": {"width": 0}, "layer": "below", "name": f"band-{c.get('number')}"}


def _line(c: dict, color: str, name: str, **kw: Any) -> go.Scatter:
    std = c.get("std") or [None] * len(c.get("steps") or [])
    return go.Scatter(x=c.get("steps") or [], y=c.get("mean") or [], mode="lines+markers",
                      name=name, line={"color": color, "width": 2, **kw.pop("line", {})},
                      marker={"size": 4}, customdata=std, meta={"group": c.get("number")},
                      hovertemplate=name + "<br>step %{x}: %{y:.4f} ± %{customdata:.4f}"
                                    "<extra></extra>", **kw)


def curves_figure(report: dict, color: dict[str, str]) -> dict | None:
    """Validation metric against step, mean ± std band per group; one trace per group."""
    curves = report.get("curves") or {}
    groups = [c for c in curves.get("groups") or [] if c.get("steps")]
    if not groups:
        return None
    metric, split = str(curves.get("metric", "metric")), str(curves.get("split", "?"))
    fig = go.Figure()
    for c in groups:
        col = color.get(str(c.get("number")), "#1f77b4")
        fig.add_trace(_line(c, col, label(c, c.get("number"))))
        band = _band(c, col)
        if band:
            fig.add_shape(band)
    fig.update_layout(
        title={"text": f"{html.escape(metric)} on <b>{html.escape(split)}</b> during training "
                       "(mean ± std over seeds)", "x": 0, "xanchor": "left"},
        height=420, plot_bgcolor="white", hovermode="closest",
        margin={"l": 70, "r": 20, "t": 60, "b": 50}, legend={"orientation": "v"},
        xaxis={"title": "optimizer step", "gridcolor": "#e6e6e6"},
        yaxis={"title": f"{html.escape(split)} {html.escape(metric)}", "gridcolor": "#e6e6e6"})
    return as_dict(fig)


def losses_figure(report: dict, color: dict[str, str], cols: int = 3) -> dict | None:
    """Small multiples: each non-baseline group's training loss beside the baseline's."""
    curves = [c for c in (report.get("losses") or {}).get("groups") or [] if c.get("steps")]
    base_no = {g.get("number") for g in report.get("groups") or [] if g.get("baseline")}
    base = next((c for c in curves if c.get("number") in base_no), None)
    others = [c for c in curves if c is not base]
    if not others:
        others, base = ([base] if base else []), None
    if not others:
        return None
    cols = min(cols, len(others))
    rows = math.ceil(len(others) / cols)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.07,
                        vertical_spacing=0.32 / rows,
                        subplot_titles=[label(c, c.get("number"), 40) for c in others])
    for i, c in enumerate(others):
        row, col = i // cols + 1, i % cols + 1
        pairs = ([(base, BASELINE_COLOR, {"dash": "dot"})] if base else []) + [
            (c, color.get(str(c.get("number")), "#1f77b4"), {})]
        for cur, col_, dash in pairs:
            name = label(cur, cur.get("number")) + (" (baseline)" if cur is base else "")
            fig.add_trace(_line(cur, col_, name, line=dash, showlegend=False,
                                legendgroup=str(cur.get("number"))), row=row, col=col)
            band = _band(cur, col_)
            if band:
                fig.add_shape(band, row=row, col=col)
    fig.update_annotations(font={"size": 13})
    fig.update_layout(height=80 + 290 * rows, plot_bgcolor="white", showlegend=False,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, hovermode="closest")
    fig.update_xaxes(gridcolor="#e6e6e6", title_text="optimizer step", title_font={"size": 11})
    fig.update_yaxes(gridcolor="#e6e6e6", title_text="training loss", title_font={"size": 11})
    return as_dict(fig)
