"""Learning curves (``eval.every_n_steps``) through the real ``trainer.fit``: points at step 0,
every N steps and at the end, in ``val_curve.csv``, and training exactly as without them."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from hnm.eval.subset import eval_subset
from tests.effects.harness import planted_data, record_fit

RUN = ["trainer.max_epochs=2", "batch_size=16", "eval.val_split=test", "eval.val_queries=8",
       "eval.val_corpus=40"]


@pytest.mark.parametrize("extra", [[], ["+sampler=ngame"]], ids=["baseline", "ngame"])
def test_curve_points_and_identical_training(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "curved").mkdir()
    plain = record_fit(tmp_path / "plain", [*RUN, *extra])
    curved = record_fit(tmp_path / "curved", [*RUN, *extra, "eval.every_n_steps=3"])
    assert len(plain.losses) == 8
    assert curved.losses == plain.losses  # bit-identical: the curve does not touch training
    rows = list(csv.DictReader((tmp_path / "curved" / "val_curve.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 3, 6, 8]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1, 1]
    assert all(0.0 <= float(r["ndcg@10"]) <= 1.0 for r in rows)
    assert rows[0]["ndcg@10"] != rows[-1]["ndcg@10"]  # the model changed along the curve
    assert curved.run.val_curve.points == 4 and curved.run.val_curve.texts == 4 * (8 + 40)
    assert not (tmp_path / "plain" / "val_curve.csv").exists()


def test_fit_time_excludes_the_curve_and_its_texts_count_as_evaluation(tmp_path: Path) -> None:
    from hnm import train as T

    rec = record_fit(tmp_path, [*RUN, "eval.every_n_steps=4"])
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        T.report(rec.run)
    finally:
        os.chdir(old)
    m = rec.run.metrics
    assert m["compute/nograd_texts_strategy"] == 0  # the baseline runs no model without grad
    assert m["compute/nograd_texts_eval"] == rec.run.eval_texts + 3 * (8 + 40)
    assert m["compute/texts_with_grad"] == 2 * sum(s.batch_size for s in rec.steps)
    assert m["time/val_eval_s"] > 0 and m["val/points"] == 3


def test_eval_subset_keeps_judged_documents_and_is_seeded() -> None:
    data = planted_data()
    a = eval_subset(data, "test", max_queries=5, max_docs=30, seed=0)
    b = eval_subset(data, "test", max_queries=5, max_docs=30, seed=0)
    assert list(a.corpus) == list(b.corpus) and list(a.queries) == list(b.queries)
    assert len(a.queries) == 5 and len(a.corpus) == 30
    assert all(d in a.corpus for q in a.queries for d in a.qrels["test"][q])
    from hnm.errors import ConfigError

    with pytest.raises(ConfigError, match="eval.val_corpus=2 is smaller"):
        eval_subset(data, "test", max_queries=5, max_docs=2)


def test_an_existing_curve_file_is_never_rewritten_unless_resuming(tmp_path: Path) -> None:
    from hnm.callbacks.val_curve import ValCurve
    from hnm.errors import ConfigError, HnmError

    path = tmp_path / "val_curve.csv"
    path.write_text("step,epoch,ndcg@10\n0,0,0.5\n4,0,0.6\n")
    curve = ValCurve(None, 4, path, None)
    with pytest.raises(HnmError, match="never overwrites"):
        curve._open(0)
    assert path.read_text().count("\n") == 3
    curve.resume_step = 0  # a resumed run at step 0 keeps the points up to it
    curve._open(0)
    curve._close()
    assert path.read_text() == "step,epoch,ndcg@10\n0,0,0.5\n"
    with pytest.raises(ConfigError, match="eval.every_n_steps=0"):
        ValCurve(None, 0, tmp_path / "x.csv", None)


@pytest.mark.parametrize("bad,match", [
    (["eval.every_n_steps=0"], "eval.every_n_steps=0 is not valid"),
    (["eval.every_n_steps=0.5"], "eval.every_n_steps=0.5 is not valid"),
    (["eval.every_n_steps=2", "eval.val_queries=-3"], "eval.val_queries=-3 is not valid"),
    (["optimize_metric=dev/planted/ndcg@10"], "optimize_metric='dev/planted/ndcg@10' names"),
])
def test_bad_curve_and_metric_knobs_are_refused_before_training(tmp_path: Path, bad, match):
    from hnm import train as T
    from hnm.errors import ConfigError
    from tests.effects.harness import compose_cfg

    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ConfigError, match=match):
            T.build(compose_cfg([*RUN, *bad]), data=planted_data())
    finally:
        os.chdir(old)
