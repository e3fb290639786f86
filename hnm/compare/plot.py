"""The comparison as figures.

``compare.png`` shows the decision: per dataset and tested metric, a forest plot of each
group's Δ against the baseline with its 95% CI, the per-seed differences as dots, the zero-shot
model's position relative to the baseline, and each group's p-value with the test named.
``curves.png`` shows how training went: the learning curves (validation metric against steps,
mean ± std over seeds) and each group's training loss beside the baseline's, in its own panel,
because losses are not comparable across strategies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hnm.compare.grouping import Group
from hnm.compare.power import TEST, TEST_ONE_SEED
from hnm.compare.render import format_p, shorten
from hnm.compare.summary import SummaryRow

LOSS_NOTE = ("Training losses are not comparable across strategies (masks, extra candidates, "
             "weights and teachers change what the loss measures): each panel shows one group "
             "beside the baseline; judge strategies by the learning curves and compare.png.")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _p_text(p: float | None) -> str:
    s = format_p(p)
    return f"p{s}" if s.startswith("<") else f"p={s}"


def forest_panel(ax, rows: Sequence[SummaryRow], metric: str, stage: str, split: str,
                 colors) -> None:
    """One dataset's forest plot of ``metric`` on ``ax``."""
    others = [r for r in rows if not r.baseline and metric in r.tests]
    base = next(r for r in rows if r.baseline)
    ys = np.arange(len(others))[::-1]
    xs: list[float] = [0.0]
    for y, r in zip(ys, others):
        t = r.tests[metric]
        color = colors((r.number - 1) % 10)
        ax.scatter(t.seed_deltas, np.full(len(t.seed_deltas), y - 0.18), s=14,
                   facecolors="none", edgecolors=color, linewidths=1, zorder=3)
        xs += t.seed_deltas
        res = t.result
        if res is None:
            ax.text(0, y, t.note or "no test", ha="center", va="center", fontsize=8)
            continue
        ax.plot([res.ci_low, res.ci_high], [y, y], color=color, lw=2.5, solid_capstyle="butt")
        ax.plot([res.delta], [y], "o", color=color, ms=7, zorder=4)
        xs += [res.ci_low, res.ci_high]
        name = ("t (queries+seeds)" if res.test == TEST else
                "t (queries+seeds‡)" if res.test == TEST_ONE_SEED else "t (queries only†)")
        text = (f"{res.delta:+.4f}  {name} {_p_text(res.p)}"
                + (f", Holm {_p_text(t.p_holm)}" if t.p_holm is not None and
                   len(others) > 1 else "") + (f"\nMDE {res.mde:.4f}" if math.isfinite(res.mde)
                                               else ""))
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=7.5, color=color)
    ax.axvline(0.0, color="black", lw=1)
    lo, hi = min(xs), max(xs)
    pad = max(hi - lo, 1e-3) * 0.15
    lo, hi = lo - pad, hi + pad
    zs = base.metrics.get(f"zero_shot/{metric}", (math.nan, 0))[0]
    ref = base.metrics.get(f"{stage}/{metric}", (math.nan, 0))[0]
    if math.isfinite(zs) and math.isfinite(ref):
        z = zs - ref
        if lo <= z <= hi:
            ax.axvline(z, color="grey", ls="--", lw=1)
            ax.text(z, 1.01, "zero-shot", transform=ax.get_xaxis_transform(), ha="center",
                    fontsize=7, color="grey")
        else:
            # inside the panel's bottom corner, clear of the panel title and the rows
            ax.text(0.006 if z < lo else 0.994, 0.02, f"{'← ' if z < lo else ''}zero-shot "
                    f"{z:+.4f}{' →' if z > hi else ''}", transform=ax.transAxes,
                    ha="left" if z < lo else "right", va="bottom", fontsize=7, color="grey",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1}, zorder=5)
    ax.set_xlim(lo, hi)
    ax.set_yticks(ys, [f"{r.number}: {shorten(r.group.label)}" for r in others], fontsize=8)
    ax.set_ylim(-0.7, len(others) - 0.3)
    ax.set_xlabel(f"Δ {split} {metric} vs baseline ({shorten(base.group.label, 24)})",
                  fontsize=8)
    ax.grid(axis="x", alpha=0.3)


def plot_forest(rows: Sequence[SummaryRow], metrics: Sequence[str], stage: str, split: str,
                path: Path) -> Path:
    """``compare.png``: one forest panel per dataset and tested metric, stacked, with the
    tests' figures to the right of each group's row."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    plt = _plt()
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    metrics = [m for m in metrics if any(m in r.tests for r in rows)]
    panels = [(d, m) for d in datasets for m in metrics]
    n_groups = max(1, len({r.number for r in rows if not r.baseline}))
    heights = [0.55 * n_groups + 0.9 for _ in panels] or [1.5]
    fig, axes = plt.subplots(len(heights), 1, squeeze=False,
                             figsize=(11, sum(heights) + 0.8),
                             gridspec_kw={"height_ratios": heights})
    colors = plt.get_cmap("tab10")
    for ax, (dataset, metric) in zip(axes[:, 0], panels):
        forest_panel(ax, [r for r in rows if r.dataset == dataset], metric, stage, split,
                     colors)
        ax.set_title(f"{dataset}: {metric} ({split} split)", fontsize=9, loc="left")
        ax.xaxis.set_major_locator(MaxNLocator(6))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%+.3f"))
        ax.tick_params(axis="x", labelsize=8)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no per-query test (one group only?)", ha="center")
        axes[0][0].axis("off")
    fig.suptitle(f"Δ against the baseline with 95% CI over queries and seeds, ○ = per seed; "
                 f"{split} split", fontsize=10)
    fig.subplots_adjust(left=0.24, right=0.64, top=1 - 0.5 / (sum(heights) + 0.8),
                        bottom=0.45 / (sum(heights) + 0.8), hspace=0.9)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def mean_band(series: Sequence[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std) over runs, on the steps every run has (else their union)."""
    series = [s for s in series if s]
    if not series:
        return np.array([]), np.array([]), np.array([])
    shared = set.intersection(*(set(s) for s in series)) or set().union(*series)
    steps = np.array(sorted(shared))
    vals = [[s[x] for s in series if x in s] for x in steps]
    return steps, np.array([np.mean(v) for v in vals]), np.array(
        [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals])


def loss_band(group: Group):
    return mean_band([{int(r["step"]): r["loss"] for r in run.curve()} for run in group.runs])


def val_band(group: Group, metric: str):
    return mean_band([dict(run.val_curve(metric)) for run in group.runs])


def plot_curves(groups: Sequence[Group], baseline: int, metric: str, val_split: str | None,
                path: Path) -> Path | None:
    """``curves.png`` (None when no run has a curve)."""
    vals = [val_band(g, metric) for g in groups]
    losses = [loss_band(g) for g in groups]
    has_val = any(v[0].size for v in vals)
    others = [i for i in range(len(groups)) if i != baseline and losses[i][0].size]
    if not has_val and not losses[baseline][0].size:
        return None
    plt = _plt()
    colors = plt.get_cmap("tab10")
    n = int(has_val) + max(1, len(others))
    cols = min(n, 3)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, squeeze=False,
                             figsize=(5.2 * cols, 3.6 * ((n + cols - 1) // cols) + 0.6))
    flat = list(axes.flat)
    k = 0
    if has_val:
        ax = flat[0]
        for i, (steps, mean, std) in enumerate(vals):
            if steps.size:
                ax.plot(steps, mean, marker="o", ms=3, color=colors(i % 10),
                        label=f"{i + 1}: {shorten(groups[i].label, 28)}")
                ax.fill_between(steps, mean - std, mean + std, color=colors(i % 10), alpha=0.2)
        ax.set_title(f"learning curves: {val_split or 'validation'} {metric} "
                     "(mean ± std over seeds)", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
        k = 1
    for i in others or [baseline]:
        ax = flat[k]
        k += 1
        for j, style in ((baseline, "--"), (i, "-")):
            steps, mean, std = losses[j]
            if steps.size:
                ax.plot(steps, mean, style, color=colors(j % 10),
                        label=f"{j + 1}: {shorten(groups[j].label, 28)}")
                ax.fill_between(steps, mean - std, mean + std, color=colors(j % 10), alpha=0.15)
        ax.set_title(f"training loss: group {i + 1} beside the baseline", fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7)
    for ax in flat[k:]:
        ax.axis("off")
    fig.suptitle(LOSS_NOTE, fontsize=8, wrap=True)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
