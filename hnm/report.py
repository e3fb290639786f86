"""Readable terminal tables: before/after metrics of a run, and a sweep's runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
# the poisoning probe's metrics (+poison=…), shown where a run has them
POISON_METRICS = ("clean_ndcg@10", "asr@1", "asr@5", "asr@10", "asr@20", "clean_asr@1",
                  "clean_asr@5", "clean_asr@10", "clean_asr@20")


def present(metrics: Mapping[str, float], stage: str, dataset: str) -> list[str]:
    """:data:`METRICS`, then the :data:`POISON_METRICS` found in ``metrics``."""
    return [*METRICS, *(m for m in POISON_METRICS if f"{stage}/{dataset}/{m}" in metrics)]


def before_after_table(metrics: Mapping[str, float], dataset: str,
                       before: str = "zero_shot", after: str = "test",
                       split: str | None = None) -> Table:
    """Rows = metrics; columns = before, after, delta. ``split``, when given, names the
    evaluated split in the title (the stages are ``zero_shot``/``test`` whatever the split)."""
    where = f"{dataset} ({split} split)" if split else dataset
    table = Table(title=f"{where}: {before} vs {after}")
    table.add_column("metric")
    table.add_column(before, justify="right")
    table.add_column(after, justify="right")
    table.add_column("delta", justify="right")
    for m in present(metrics, after, dataset):
        b = metrics.get(f"{before}/{dataset}/{m}")
        a = metrics.get(f"{after}/{dataset}/{m}")
        delta = f"{a - b:+.4f}" if a is not None and b is not None else "-"
        table.add_row(m, _fmt(b), _fmt(a), delta)
    return table


def runs_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str],
               title: str = "runs") -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="left" if c in ("run", "overrides") else "right")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    return table


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def print_table(table: Table) -> None:
    """The table on the terminal, and as plain text in the job's log file."""
    import io

    from hnm.logging_setup import file_only

    Console(soft_wrap=True).print(table)
    text = io.StringIO()
    Console(file=text, width=120, no_color=True, soft_wrap=True).print(table)
    file_only("\n" + text.getvalue().rstrip())


def next_step(strategy: str, overrides: Sequence[str], metrics: Mapping[str, float],
              dataset: str, split: str, pairs: int, steps: int) -> str:
    """One line at the end of ``hnm train``: what it trained, how far it moved nDCG@10, and
    the next command: a strategy against this baseline, or seeds enough to tell a strategy
    from noise (the strategy's runs beside the baseline's, then ``hnm compare``)."""
    import shlex

    before = metrics.get(f"zero_shot/{dataset}/ndcg@10")
    after = metrics.get(f"{split}/{dataset}/ndcg@10")
    moved = (f"{split} nDCG@10 {before:.4f} -> {after:.4f} ({after - before:+.4f})"
             if before is not None and after is not None else
             f"{split} nDCG@10 {after:.4f}" if after is not None else "")
    strategic = ["sampler", "miner", "negatives", "loss", "poison"]

    def key(o: str) -> str:
        return o.split("=", 1)[0].lstrip("+~").split(".", 1)[0]

    kept = [o for o in overrides if key(o) not in ("seed", "hydra", "group")]
    what = "in-batch negatives (the baseline)" if strategy == "baseline" else strategy
    presets = [o.lstrip("+") for o in kept if key(o) == "experiment"]
    # a strategy group the command line did not choose came from the preset: name it
    chosen = {key(o) for o in kept}
    if presets and strategy != "baseline" and any(
            part.split("=", 1)[0] not in chosen for part in strategy.split("+")):
        what = f"{' '.join(presets)} ({strategy})"
    if strategy != "baseline" and not any(key(o) in strategic for o in kept):
        strategic.append("experiment")  # the preset (experiment=recommended) is the strategy
    head = f"trained {what} on {dataset} ({pairs} pairs, {steps} steps): {moved}."
    common = [o for o in kept if key(o) not in strategic]
    if strategy == "baseline" and len(kept) == len(common):
        return (f"{head} Next: a strategy against it, e.g. `hnm train experiment=recommended` "
                "(`hnm list` shows them all).")
    sweep = " ".join(shlex.quote(w) for w in ["hnm", "train", "-m", *kept, "seed=1,2,3"])
    base = " ".join(shlex.quote(w) for w in ["hnm", "train", "-m", *common, "seed=1,2,3"])
    tip = ("" if "experiment=recommended" in kept else
           "; the recipe chosen on stdlib_code's dev split: `hnm train experiment=recommended`")
    return (f"{head} Next: one seed cannot tell a strategy from noise: `{sweep}` and "
            f"`{base}`, then `hnm compare` on both multirun folders{tip}.")
