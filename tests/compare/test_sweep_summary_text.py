"""The end-of-sweep summary: readable in an 80-column log, saved in the sweep folder, with
mean ± std per group, the failed jobs and the next commands."""

from __future__ import annotations

from pathlib import Path

from hnm.callbacks.sweep_summary import collect_jobs, summarize_sweep
from tests.compare.fake_runs import mark, planted_sweep, write_run


def test_summary_fits_80_columns_and_is_saved(tmp_path: Path) -> None:
    sweep = planted_sweep(tmp_path / "sweep")
    long = ["+negatives=[gist,queue,dbpm]", "negatives.gist.margin=0.05",
            "negatives.queue.size=4096", "loss.temperature=0.02"]
    write_run(sweep / "6", seed=1, overrides=["experiment=smoke", *long],
              config={"loss": {"temperature": 0.02}, "negatives": {"gist": {"margin": 0.05}}},
              per_query={"q1": 0.5})
    (sweep / "7" / ".hydra").mkdir(parents=True)
    mark(sweep / "7", "failed", error="negatives.gist.margin=-1 is not valid; expected >= 0")
    (sweep / "0" / "wandb" / "offline-run-1").mkdir(parents=True)
    text = summarize_sweep(sweep, collect_jobs(sweep))
    assert text is not None
    lines = [x for x in text.splitlines() if not x.startswith(("  hnm ", "  wandb "))]
    assert max(len(line) for line in lines) <= 80, [x for x in lines if len(x) > 80]
    assert "…" not in text  # abbreviated with a legend, not truncated
    assert "G1" in text and "G4 = " in text and "negatives.queue.size=4096" in text
    assert "±" in text and "test nDCG@10" in text and "metrics on the test split" in text
    assert "1 job(s) did not finish" in text and "negatives.gist.margin=-1" in text
    assert f"hnm compare {sweep}" in text
    assert f"wandb sync {sweep}/*/wandb/offline-run-*" in text
    md = (sweep / "summary.md").read_text()
    assert "| G2 | +sampler=ngame | 2 | 1, 2 |" in md and "wandb sync" in md
    assert (sweep / "summary.csv").read_text().startswith("group,label,baseline,runs,seeds")
    # a second summary of the same folder leaves the saved files as they are
    again = summarize_sweep(sweep, collect_jobs(sweep))
    assert again is not None and "summary.md exists" in again
