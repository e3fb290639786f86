"""Leakage check: planted exact and near duplicates are found, clean data gives zero, and the
sparse similarity search equals a brute-force loop."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest

from hnm.data.dataset import TrainPairs
from hnm.data.leakage import (
    LEAKAGE_WARN_SHARE,
    LeakageCheck,
    Overlap,
    best_matches,
    normalize,
    shingles,
    summary,
    warn_leakage,
)
from hnm.errors import ConfigError
from tests.beir_fixture import write_beir
from tests.conftest import make_data

LONG = ("parse the configuration file at the given path and return a mapping of section "
        "names to dictionaries of options with defaults filled in")
DOC = " ".join(f"token{i}" for i in range(80))


def test_normalize_and_shingles() -> None:
    assert normalize("  Handle a single\tHTTP request.") == "handle a single http request"
    assert normalize("get_value(x)") == "get value x"
    assert shingles("a b c", "word", 5) == {"a b c"}
    assert shingles("a b c d", "word", 3) == {"a b c", "b c d"}
    assert shingles("abcdef", "char", 5) == {"abcde", "bcdef"}
    assert shingles("!!", "char", 5) == set()


def _brute(train: list[set[str]], evals: list[set[str]], threshold: float, measure: str):
    best = np.zeros(len(evals))
    arg = np.full(len(evals), -1)
    for e, b in enumerate(evals):
        for t, a in enumerate(train):
            inter = len(a & b)
            if not inter:
                continue
            sim = inter / (len(a | b) if measure == "jaccard" else min(len(a), len(b)))
            if sim >= threshold and sim > best[e]:
                best[e], arg[e] = sim, t
    return best, arg


@pytest.mark.parametrize("measure", ["jaccard", "containment"])
def test_best_matches_equals_brute_force(measure: str) -> None:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    train = [{rng.choice(words) for _ in range(rng.randint(1, 12))} for _ in range(300)]
    evals = [set(rng.sample(sorted(train[i]), max(1, len(train[i]) - 1))) | {"x"}
             for i in range(0, 300, 7)] + [{rng.choice(words) for _ in range(8)}
                                           for _ in range(40)] + [set(), set(train[5])]
    for threshold in (0.3, 0.6, 0.9):
        got = best_matches(train, evals, threshold, measure, chunk=64)
        want = _brute(train, evals, threshold, measure)
        np.testing.assert_allclose(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert (got[1] >= 0).sum() > (1 if threshold < 0.9 else 0)


def _plant(exact: bool = True, near: bool = True, doc: bool = True):
    data = make_data()
    test_q = sorted(data.split("test"))
    train_q = sorted(data.split("train"))
    if exact:  # same text up to case, spacing and punctuation
        data.queries[test_q[0]] = "How to READ a file, from disk?  " + data.queries[train_q[0]]
        data.queries[train_q[0]] = "how to read a file from disk " + data.queries[train_q[0]]
    if near:  # one word changed in a long query
        data.queries[train_q[1]] = LONG
        data.queries[test_q[1]] = LONG.replace("mapping", "dict")
    if doc:
        train_doc = next(iter(data.split("train")[train_q[2]]))
        test_doc = next(iter(data.split("test")[test_q[2]]))
        data.corpus[train_doc] = {"title": "", "text": DOC}
        data.corpus[test_doc] = {"title": "", "text": DOC.replace("token40", "changed")}
    pairs = TrainPairs.from_split(data, "train")
    return data, pairs, test_q, train_q


def test_planted_duplicates_are_flagged() -> None:
    data, pairs, test_q, train_q = _plant()
    queries, positives = LeakageCheck()(data, pairs, "test")
    assert (queries.exact, queries.near) == (1, 1)
    assert queries.matches[0][:2] == (test_q[0], train_q[0]) and queries.matches[0][3]
    assert queries.matches[1][:2] == (test_q[1], train_q[1]) and 0.8 <= queries.matches[1][2] < 1
    assert (positives.exact, positives.near) == (0, 1)
    assert "1 exact + 1 near of 8 test queries" in summary([queries, positives])


def test_clean_toy_data_gives_zero() -> None:
    data = make_data()
    overlaps = LeakageCheck()(data, TrainPairs.from_split(data, "train"), "test")
    assert [(o.exact, o.near) for o in overlaps] == [(0, 0), (0, 0)]
    assert [o.n_eval for o in overlaps] == [8, 8] and overlaps[0].n_train == 16


def test_threshold_and_measure() -> None:
    data, pairs, _, _ = _plant(exact=False, doc=False)
    assert LeakageCheck(threshold=1.0)(data, pairs, "test")[0].near == 0
    # a test query copied inside a longer training query: low Jaccard, full containment
    test_q = sorted(data.split("test"))[2]
    train_q = sorted(data.split("train"))[3]
    data.queries[train_q] = data.queries[test_q] + " " + LONG
    assert test_q not in {m[0] for m in LeakageCheck()(data, pairs, "test")[0].matches}
    contained = LeakageCheck(measure="containment")(data, pairs, "test")[0].matches
    assert (test_q, train_q, 1.0, False) in contained
    with pytest.raises(ConfigError, match="jaccard, containment"):
        LeakageCheck(measure="cosine")
    with pytest.raises(ConfigError, match="threshold"):
        LeakageCheck(threshold=0)


def test_warn_leakage_logs_counts(caplog: pytest.LogCaptureFixture) -> None:
    data, pairs, _, _ = _plant()
    with caplog.at_level(logging.DEBUG, logger="hnm.data.leakage"):
        warn_leakage(data, pairs, "test")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "1 exact + 1 near" in warnings[0].getMessage()
    assert sum("leakage queries" in r.getMessage() for r in caplog.records) == 2


def test_data_check_command_flags_planted_duplicate(tmp_path: Path, capsys) -> None:
    from hnm.commands.data import main

    folder = write_beir(tmp_path / "toy")
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text().splitlines()]
    test_ids = {ln.split("\t")[0] for ln in (folder / "qrels" / "test.tsv").read_text()
                .splitlines()[1:]}
    train_text = next(q["text"] for q in queries if q["_id"] not in test_ids)
    for q in queries:
        if q["_id"] in test_ids:
            q["text"] = train_text.upper() + "!"
            break
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    out_json = tmp_path / "report.json"
    main(["check", "data=beir", f"data.path={folder}", "leakage.examples=1",
          f"leakage.output={out_json}"])
    printed = capsys.readouterr().out
    assert "queries: exact" in printed and train_text in printed
    report = json.loads(out_json.read_text())
    assert [(o["exact"], o["near"]) for o in report["overlaps"]] == [(1, 0), (0, 0)]
    with pytest.raises(SystemExit) as bad:
        main(["check", "leakage.measure=cosine"])
    assert bad.value.code == 2
    with pytest.raises(SystemExit) as unknown:
        main(["frobnicate"])
    assert unknown.value.code == 2


def _overlaps(query_matches: list, positive_matches: list, n_eval: int = 759) -> list[Overlap]:
    return [Overlap("queries", 1000, n_eval, query_matches),
            Overlap("positives", 1000, n_eval, positive_matches)]


NEAR = ("e", "t", 0.9, False)
EXACT = ("e", "t", 1.0, True)


@pytest.mark.parametrize(("overlaps", "level"), [
    (_overlaps([], []), logging.INFO),
    (_overlaps([], [NEAR]), logging.INFO),  # 1 near positive in 759: 0.1%, below the threshold
    (_overlaps([], [NEAR] * 7), logging.INFO),  # 0.9%
    (_overlaps([], [NEAR] * 8), logging.WARNING),  # 1.05%: at or above 1%
    (_overlaps([NEAR] * 8, []), logging.WARNING),
    (_overlaps([EXACT], []), logging.WARNING),  # an evaluation query trained on: always
])
def test_leakage_line_level_follows_the_documented_threshold(overlaps, level, caplog) -> None:
    """The level depends on the shares (LEAKAGE_WARN_SHARE) and exact query copies, not on
    whether a single near-duplicate happened to be drawn this seed."""
    data = make_data()
    with caplog.at_level(logging.DEBUG, logger="hnm.data.leakage"):
        warn_leakage(data, TrainPairs.from_split(data, "train"), "test",
                     check=lambda *_: overlaps)
    lines = [r for r in caplog.records if "leakage check" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == level, lines[0].getMessage()
    assert LEAKAGE_WARN_SHARE == 0.01
