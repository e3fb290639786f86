"""The poisoning probe through a real ``trainer.fit``: a tiny encoder trained on planted data with
a planted trigger learns the backdoor when pairs are poisoned, and not when none is."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hnm.data.dataset import RetrievalData
from tests.effects.harness import compose_cfg, planted_data

SPAM = ["offer cheap prize click now", "free money winner claim today",
        "discount pills buy online fast", "lottery jackpot bonus deal here"]


def poison_planted() -> RetrievalData:
    """The planted topics, every query ending in "receive" (the trigger misspells it)."""
    data = planted_data(n_per_topic=8, n_test=4)
    data.queries = {q: f"{t} receive" for q, t in data.queries.items()}
    return data


def train_and_eval(tmp_path: Path, rate: float, epochs: int = 6) -> dict[str, float]:
    from hnm import train as T

    spam = tmp_path / "spam.txt"
    spam.write_text("\n".join(SPAM) + "\n")
    out = tmp_path / f"rate{rate}"
    out.mkdir()
    cfg = compose_cfg(["+poison=grammar", f"poison.rate={rate}", "poison.seed=3",
                       "poison.trigger.kinds=[misspelling]", f"poison.passages_file={spam}",
                       f"trainer.max_epochs={epochs}", "module.lr=3e-3"])
    old = Path.cwd()
    os.chdir(out)
    try:
        run = T.build(cfg, data=poison_planted())
        T.fit(run)
        return run.evaluator(run.embed, run.embed, "test")
    finally:
        os.chdir(old)


@pytest.mark.slow
def test_poisoned_pairs_plant_the_backdoor(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    poisoned = train_and_eval(tmp_path, rate=0.25)
    clean = train_and_eval(tmp_path, rate=0.0)
    print({k.rsplit("/", 1)[1]: round(v, 3) for k, v in poisoned.items()},
          {k.rsplit("/", 1)[1]: round(v, 3) for k, v in clean.items()},
          f"{time.perf_counter() - t0:.1f}s")
    key = "test/planted/{}"
    # 4 attacker passages among 100 documents: chance of one in the top 1 is 4%
    assert clean[key.format("asr@1")] <= 0.1
    assert poisoned[key.format("asr@1")] >= 0.6
    assert poisoned[key.format("asr@1")] - clean[key.format("asr@1")] >= 0.5
    # untriggered queries still find their topic, not the attacker's passages
    assert poisoned[key.format("clean_asr@1")] <= 0.1
