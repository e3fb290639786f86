"""The comparison as a PNG: the main metric per group (mean ± std over seeds, one dot per
seed, p-values against the baseline) and the groups' training-loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hnm.compare.grouping import Group
from hnm.compare.render import format_p
from hnm.compare.summary import SummaryRow


def mean_curve(group: Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean loss, std loss) over the group's runs, on the steps every run logged
    (the union when no step is shared)."""
    curves = [{int(r["step"]): r["loss"] for r in run.curve()} for run in group.runs]
    curves = [c for c in curves if c]
    if not curves:
        return np.array([]), np.array([]), np.array([])
    shared = set.intersection(*(set(c) for c in curves)) or set().union(*curves)
    steps = np.array(sorted(shared))
    values = [[c[s] for c in curves if s in c] for s in steps]
    return (steps, np.array([np.mean(v) for v in values]),
            np.array([np.std(v) for v in values]))


def plot_comparison(rows: Sequence[SummaryRow], groups: Sequence[Group], stage: str,
                    metric: str, path: Path) -> Path:
    """Write the PNG to ``path`` (which must not exist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    datasets = list(dict.fromkeys(r.dataset for r in rows))
    n_panels = len(datasets) + 1
    width = max(6.0, 0.9 * len(groups) + 3)
    fig, axes = plt.subplots(1, n_panels, figsize=(width * len(datasets) + 6, 4.8),
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    key = f"{stage}/{metric}"
    for ax, dataset in zip(axes[0], datasets):
        ds_rows = [r for r in rows if r.dataset == dataset]
        x = np.arange(len(ds_rows))
        means = [r.metrics.get(key, (np.nan, np.nan))[0] for r in ds_rows]
        stds = [r.metrics.get(key, (np.nan, np.nan))[1] for r in ds_rows]
        ax.bar(x, means, yerr=stds, capsize=4,
               color=[colors((r.number - 1) % 10) for r in ds_rows],
               edgecolor=["black" if r.baseline else "none" for r in ds_rows], linewidth=1.5)
        for xi, r in zip(x, ds_rows):
            seeds = [run.metrics[f"{stage}/{dataset}/{metric}"] for run in r.group.runs
                     if f"{stage}/{dataset}/{metric}" in run.metrics]
            ax.scatter(np.full(len(seeds), xi), seeds, color="black", s=12, zorder=3)
            note = "baseline" if r.baseline else (
                _p_label(format_p(r.paired.p_random)) if r.paired is not None else "")
            top = np.nanmax([means[xi] + (stds[xi] or 0), *seeds]) if seeds else means[xi]
            if np.isfinite(top):
                ax.annotate(note, (xi, top), textcoords="offset points", xytext=(0, 4),
                            ha="center", fontsize=8)
        ax.set_xticks(x, [f"{r.number}: {_short(r.group.label)}" for r in ds_rows],
                      rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"{stage} {metric}")
        ax.set_title(f"{dataset}: {metric} (mean ± std over seeds)", fontsize=10)
        ax.margins(y=0.15)
    ax = axes[0][-1]
    drew = False
    for i, g in enumerate(groups):
        steps, mean, std = mean_curve(g)
        if steps.size == 0:
            continue
        drew = True
        ax.plot(steps, mean, color=colors(i % 10), label=f"{i + 1}: {_short(g.label)}")
        ax.fill_between(steps, mean - std, mean + std, color=colors(i % 10), alpha=0.2)
    ax.set_title("training loss (mean ± std over seeds)", fontsize=10)
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if drew:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no training curves found", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _p_label(p: str) -> str:
    return f"p{p}" if p.startswith("<") else f"p={p}"
