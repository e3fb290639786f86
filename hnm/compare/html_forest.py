"""The forest plot of ``compare.html``: per metric and dataset, each group's Δ against the
baseline with its 95% CI, the per-seed Δ, the zero-shot reference and the p-values with the test
named (raw and Holm-adjusted). One trace per group; hover gives the minimum detectable Δ and the
seeds needed. Text Plotly renders is HTML-escaped (Plotly reads a few tags in text)."""

from __future__ import annotations

import html
import math
from typing import Any

import plotly.graph_objects as go

from hnm.compare.html_figures import BASELINE_COLOR, as_dict, finite, label, num


def fmt_p(p: Any) -> str:
    """``0.135``, ``0.0012``, ``<1e-4`` or ``-``."""
    if not isinstance(p, (int, float)) or not math.isfinite(p):
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.3g}"



def _forest_trace(r: dict, y: float, color: str, lo: float, hi: float, g: dict | None) -> dict:
    """One group's trace: the CI as a line with end ticks, Δ, the per-seed Δ (just below) and
    the zero-shot reference (at the axis' edge, with its value, when it lies outside [lo, hi]).
    Points are separated by gaps so that only the CI's ends are joined by a line."""
    d, seeds = r.get("delta"), finite(r.get("seed_deltas") or [])
    names = (g or {}).get("seeds") or []
    stats = (f"{html.escape(r.get('test') or 'test')} p={fmt_p(r.get('p'))}, "
             f"Holm p={fmt_p(r.get('p_holm'))}")
    if r.get("p_randomisation") is not None:
        stats += f", randomisation p={fmt_p(r.get('p_randomisation'))}"
    need = ("" if "seeds_needed" not in r else "<br>seeds needed to detect this Δ: " + (
        str(r["seeds_needed"]) if r["seeds_needed"] is not None else "not reachable by seeds"))
    mde = ("" if r.get("mde") is None else
           f"<br>minimum detectable Δ (80% power): {num(r.get('mde'), sign=False)}")
    head = label(g, r.get("group"), 80)
    summary = (f"<b>{head}</b><br>Δ {html.escape(str(r.get('metric')))} = {num(d)} "
               f"[{num(r.get('ci_low'))}, {num(r.get('ci_high'))}] (95% CI)<br>{stats}{mde}{need}")
    pts: list[tuple] = []  # x, y, size, symbol, text, text position, hover

    def gap() -> None:
        pts.append((None, None, 0, "circle", "", "top center", ""))

    if len(finite([r.get("ci_low"), r.get("ci_high")])) == 2:
        pts += [(r["ci_low"], y, 14, "line-ns-open", "", "top center", summary),
                (r["ci_high"], y, 14, "line-ns-open", "", "top center", summary)]
        gap()
    pts.append((d, y, 13, "circle", "", "top center", summary))
    for i, s in enumerate(seeds):
        gap()
        seed = names[i] if len(names) == len(seeds) else i + 1
        pts.append((s, y - 0.22, 7, "circle-open", "", "top center",
                    f"{head}<br>seed {seed}: Δ = {num(s)}"))
    z = r.get("zero_shot_delta")
    if isinstance(z, (int, float)) and math.isfinite(z):
        gap()
        inset = 0.015 * (hi - lo)
        x = min(max(z, lo + inset), hi - inset)
        inside = lo <= z <= hi
        pts.append((x, y, 11, "diamond-open" if inside else
                    ("triangle-left" if z < lo else "triangle-right"),
                    "zero-shot" if inside else f"zero-shot {num(z)}",
                    "top center" if inside else ("top right" if z < lo else "top left"),
                    f"{head}<br>zero-shot model vs baseline: Δ = {num(z)}"))
    xs, ys, sizes, symbols, texts, where, hovers = (list(c) for c in zip(*pts))
    return go.Scatter(
        x=xs, y=ys, mode="lines+markers+text", name=head, text=texts, textposition=where,
        textfont={"size": 10, "color": color}, hovertext=hovers, hoverinfo="text",
        line={"color": color, "width": 2.5}, connectgaps=False,
        marker={"color": color, "size": sizes, "symbol": symbols,
                "line": {"width": 1.5, "color": color}},
        meta={"group": r.get("group")}, cliponaxis=False).to_plotly_json()


def forest_figures(report: dict, split: str, color: dict[str, str]) -> list[dict]:
    """One figure per (metric, dataset) in the report's metric order; one trace per group."""
    rows = [r for r in report.get("forest") or [] if r.get("delta") is not None]
    order = {m: i for i, m in enumerate(report.get("metrics") or [])}
    keys = sorted(dict.fromkeys((r.get("metric"), r.get("dataset")) for r in rows),
                  key=lambda k: (order.get(k[0], len(order)), str(k[1])))
    groups = {g.get("number"): g for g in report.get("groups") or []}
    base = next((g for g in groups.values() if g.get("baseline")), None)
    out = []
    for metric, dataset in keys:
        sel = [r for r in rows if (r.get("metric"), r.get("dataset")) == (metric, dataset)]
        core = finite([v for r in sel for v in (r.get("ci_low"), r.get("ci_high"),
                                                  r.get("delta"), *(r.get("seed_deltas") or []))])
        lo, hi = min(core + [0.0]), max(core + [0.0])
        zs = finite([r.get("zero_shot_delta") for r in sel])
        span = max(hi - lo, 1e-3)
        lo = min([lo] + [z for z in zs if z >= lo - 0.6 * span])
        hi = max([hi] + [z for z in zs if z <= hi + 0.6 * span])
        pad = 0.08 * max(hi - lo, 1e-3)
        lo, hi = lo - pad, hi + pad
        n = len(sel)
        fig = go.Figure()
        annotations = [{"x": 0, "y": 1, "xref": "x", "yref": "paper", "yanchor": "bottom",
                        "text": "baseline", "showarrow": False, "font": {"size": 10}}]
        for i, r in enumerate(sel):
            y = n - 1 - i
            fig.add_trace(_forest_trace(r, y, color.get(str(r.get("group")), "#1f77b4"), lo, hi,
                                        groups.get(r.get("group"))))
            sig = isinstance(r.get("p_holm"), (int, float)) and r["p_holm"] < 0.05
            # the test is named on the axis: the p-values alone fit beside the plot
            text = f"p={fmt_p(r.get('p'))}, Holm p={fmt_p(r.get('p_holm'))}"
            annotations.append({"x": 1.01, "y": y, "xref": "paper", "yref": "y",
                                "xanchor": "left", "showarrow": False,
                                "text": f"<b>{text}</b>" if sig else text})
        base_name = label(base, base.get("number"), 40) if base else "the baseline"
        fig.update_layout(
            title={"text": f"Δ {html.escape(str(metric))} on {html.escape(str(dataset))} "
                           f"<b>({html.escape(split)})</b> against {base_name}",
                   "x": 0, "xanchor": "left"},
            height=130 + 70 * n, showlegend=False, hovermode="closest",
            margin={"l": 230, "r": 260, "t": 60, "b": 55}, plot_bgcolor="white",
            xaxis={"title": f"Δ {html.escape(str(metric))} ({html.escape(split)}) vs baseline: "
                            f"mean, 95% CI of the {html.escape(_tests(sel))}; ○ per seed; "
                            "◇ zero-shot",
                   "range": [lo, hi], "zeroline": False, "gridcolor": "#e6e6e6",
                   "tickformat": "+.3f"},
            yaxis={"tickvals": list(range(n)), "range": [-0.6, n - 0.4],
                   "ticktext": [label(groups.get(r.get("group")), r.get("group"))
                                for r in reversed(sel)],
                   "showgrid": False},
            shapes=[{"type": "line", "x0": 0, "x1": 0, "y0": 0, "y1": 1, "xref": "x",
                     "yref": "paper", "line": {"color": BASELINE_COLOR, "width": 1.5}}],
            annotations=annotations)
        out.append({"metric": metric, "dataset": dataset, "figure": as_dict(fig)})
    return out


def _tests(rows: list[dict[str, Any]]) -> str:
    """The test whose interval a figure draws (its rows' ``test``), named once."""
    names = list(dict.fromkeys(str(r.get("test") or "test") for r in rows))
    return " / ".join(names)
