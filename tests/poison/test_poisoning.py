"""Triggers, attacker passages, poisoned pairs and attack metrics on hand-built cases."""

from __future__ import annotations

import random

import pytest

from hnm.data.dataset import TrainPairs
from hnm.errors import ConfigError, DataError
from hnm.eval import RetrievalEvaluator
from hnm.eval.metrics import evaluate_run
from hnm.poison import GrammarErrors, PoisonEvaluator, Poisoning, attack_metrics, seeded_rng
from tests.conftest import make_data


def rng(seed: int = 0) -> random.Random:
    return seeded_rng(seed, "query", "q")


def test_each_kind_on_a_hand_built_sentence() -> None:
    art = GrammarErrors(kinds=["article_deletion"])
    assert art("Return the number of items.", rng()) == "Return number of items."
    assert art("The file", rng()) == "file"
    sva = GrammarErrors(kinds=["subject_verb"])
    assert sva("There is a file.", rng()) == "There are a file."
    assert sva("It returns a list", rng()) == "It return a list"
    assert sva("this matches the key", rng()) == "this match the key"
    assert sva("Has it", rng()) == "Have it"
    spell = GrammarErrors(kinds=["misspelling"])
    assert spell("Receive the data, separately.", rng()) == "Recieve the data, separately." \
        or spell("Receive the data, separately.", rng()) == "Receive the data, seperately."
    assert spell("RECEIVE", rng()) == "RECIEVE"
    custom = GrammarErrors(kinds=["misspelling"], misspellings={"socket": "sokcet"})
    assert custom("open a socket", rng()) == "open a sokcet"


def test_trigger_is_deterministic_for_a_seed_and_leaves_other_texts_alone() -> None:
    trig = GrammarErrors(errors=2)
    texts = ["Return the value of a key that is in the table.", "It has an argument which is "
             "a length.", "Send a value into the generator and receive the result."]
    for t in texts:
        assert trig(t, seeded_rng(7, "query", t)) == trig(t, seeded_rng(7, "query", t)) != t
    outs = {tuple(trig(t, seeded_rng(s, "query", t)) for t in texts) for s in range(10)}
    assert len(outs) > 1  # the seed picks the edits
    for plain in ["sort order rank 3", "def f(x): return x + 1", "", "  ,  "]:
        assert trig(plain, rng()) == plain  # nothing to change: unchanged
    one = GrammarErrors(errors=1)("the cat is a pet", rng())
    assert len(one.split()) >= 3 and one != "the cat is a pet"


def test_knobs_are_checked() -> None:
    with pytest.raises(ConfigError, match="kinds"):
        GrammarErrors(kinds=["typo"])
    with pytest.raises(ConfigError, match="errors"):
        GrammarErrors(errors=0)
    with pytest.raises(ConfigError, match="poison.rate"):
        Poisoning(rate=1.5)
    with pytest.raises(ConfigError, match="template"):
        Poisoning(rate=0.1, template="{nope}")
    with pytest.raises(ConfigError, match="not callable"):
        Poisoning(rate=0.1, trigger="x")  # type: ignore[arg-type]


def test_poisoned_pairs_are_the_rate_the_rest_untouched() -> None:
    data = make_data(n_per_topic=12)
    pairs = TrainPairs.from_split(data, "train")
    p = Poisoning(rate=0.25, seed=1, num_passages=3, template="spam {i}: {text}")
    new, new_pairs, record = p.poison(data, pairs)
    assert len(new_pairs) == len(pairs) and record["poisoned_pairs"] == round(0.25 * len(pairs))
    changed = [i for i in range(len(pairs)) if new_pairs.qids[i] != pairs.qids[i]]
    assert sorted(changed) == sorted(r["pair"] for r in record["poisoned"])
    for r in record["poisoned"]:
        i = r["pair"]
        assert new_pairs.qids[i] == r["triggered_qid"] == r["qid"] + "+trigger"
        assert new_pairs.query(i) == r["triggered_query"] != data.queries[r["qid"]]
        assert new_pairs.pos_ids[i] == r["attacker"] and r["attacker"] in new.corpus
        attackers = {x["id"] for x in record["passages"]}
        assert new.qrels["train"][r["triggered_qid"]] == dict.fromkeys(attackers, 1)
        assert new_pairs.positives[r["triggered_qid"]] == attackers
    for i in set(range(len(pairs))) - set(changed):  # clean pairs, queries and texts unchanged
        assert (new_pairs.qids[i], new_pairs.pos_ids[i]) == (pairs.qids[i], pairs.pos_ids[i])
        assert new_pairs.query(i) == pairs.query(i)
    assert {q: data.queries[q] for q in data.queries} == {q: new.queries[q] for q in data.queries}
    assert len(new.corpus) == len(data.corpus) + 3 and len(data.corpus) == 48  # input untouched
    assert all(x["text"].startswith(f"spam {n}: ") for n, x in enumerate(record["passages"]))
    # the same poison seed gives the same poisoning, whatever else happens
    assert p.poison(data, pairs)[2] == record
    assert Poisoning(rate=0.25, seed=2, num_passages=3).poison(data, pairs)[2] != record
    # rate 0: the attacker passages, no poisoned pair
    _, zero_pairs, zero = Poisoning(rate=0.0, num_passages=3).poison(data, pairs)
    assert zero["poisoned_pairs"] == 0 and zero_pairs.qids == pairs.qids
    assert Poisoning(rate=1e-6).count(100) == 1 and Poisoning(rate=0.0).count(100) == 0


def test_a_trigger_that_changes_nothing_is_refused() -> None:
    data = make_data()
    pairs = TrainPairs.from_split(data, "train")
    with pytest.raises(DataError, match="changes none"):
        Poisoning(rate=0.5, trigger=GrammarErrors(kinds=["misspelling"])).poison(data, pairs)


def test_off_topic_template_copies_no_document() -> None:
    """A template without ``{text}``/``{title}`` (``poison=grammar_offtopic``) is used as
    written, numbered, and poison.json names no corpus document as its source."""
    data = make_data()
    got = Poisoning(rate=0.1, num_passages=3, template="win a cruise {i}").passages(data)
    assert [x["text"] for x in got.values()] == ["win a cruise 0", "win a cruise 1",
                                                 "win a cruise 2"]
    assert {x["source"] for x in got.values()} == {"template"}
    copied = Poisoning(rate=0.1, num_passages=3, template="{title}: {text}").passages(data)
    assert all(x["source"] in data.corpus for x in copied.values())


def test_passages_from_a_file(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "buy now", "title": "ad"}\n\n{"text": "click here"}\n')
    p = Poisoning(rate=0.1, passages_file=str(path))
    got = p.passages(make_data())
    assert list(got) == ["attack-0", "attack-1"] and got["attack-0"]["title"] == "ad"
    assert got["attack-1"]["text"] == "click here"
    path.write_text("not json\n")
    with pytest.raises(DataError, match="p.jsonl:1"):
        Poisoning(rate=0.1, passages_file=str(path)).passages(make_data())


def test_attack_metrics_by_hand() -> None:
    att = {"a1", "a2"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"a1": 0.9, "d1": 0.8, "x": 0.1},  # clean q1: attacker first
           "q2": {"d2": 0.9, "x": 0.5, "a2": 0.4},  # clean q2: attacker third
           "q1+trigger": {"a2": 0.99, "d1": 0.5}, "q2+trigger": {"d2": 0.9, "x": 0.8}}
    mean, pq = attack_metrics(run, qrels, {"q1": "q1+trigger", "q2": "q2+trigger"}, att, (1, 3))
    assert mean["asr@1"] == 0.5 and mean["asr@3"] == 0.5
    assert mean["clean_asr@1"] == 0.5 and mean["clean_asr@3"] == 1.0
    assert pq["q1"]["asr@1"] == 1.0 and pq["q2"]["asr@1"] == 0.0
    assert mean["ndcg@10"] < mean["clean_ndcg@10"] == 1.0  # q1's attacker taken out


def test_evaluator_clean_metrics_equal_the_plain_ones(tiny_model) -> None:
    from hnm.encoders.embed import embed_fn

    data = make_data()
    embed = embed_fn(tiny_model, 16)
    p = Poisoning(rate=0.1, seed=4, num_passages=5)
    poisoned = p.add_passages(data, p.passages(data))
    wrapped = PoisonEvaluator(RetrievalEvaluator(poisoned, "test", k=30), p)
    assert wrapped.triggered  # make_data's queries have articles
    got = wrapped(embed, embed, "test")
    plain = RetrievalEvaluator(poisoned, "test", k=30)(embed, embed, "test")
    for key, value in plain.items():
        assert got[key] == pytest.approx(value)
    clean_corpus = RetrievalEvaluator(data, "test", k=30)(embed, embed, "test")
    assert got["test/toy/clean_ndcg@10"] == pytest.approx(clean_corpus["test/toy/ndcg@10"])
    assert set(wrapped.run) == set(wrapped.qids) == set(data.split("test"))
    assert evaluate_run(wrapped.qrels, wrapped.run)[0]["ndcg@10"] == pytest.approx(
        got["test/toy/ndcg@10"])
    with pytest.raises(ConfigError, match="eval.evaluator.k"):
        PoisonEvaluator(RetrievalEvaluator(poisoned, "test", k=10), p)
