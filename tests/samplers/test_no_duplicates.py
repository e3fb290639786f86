"""NoDuplicatesSampler: planted duplicate texts never share a batch."""

from __future__ import annotations

import pytest

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.samplers.no_duplicates import NoDuplicatesSampler
from hnm.types import BatchSampler


def planted_pairs() -> TrainPairs:
    """60 pairs with many duplicates: a query with 6 positives, a document shared by 5
    queries, two queries with identical text, and a query whose text is another's document."""
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(50)}
    corpus["dup"] = {"title": "", "text": "doc 3"}          # same text as d3 under another id
    queries = {f"q{i}": f"query {i}" for i in range(40)}
    queries["q_same"] = "query 7"                            # same text as q7
    queries["q_doc"] = "doc 10"                              # equals d10's text
    qrels: dict[str, dict[str, int]] = {f"q{i}": {f"d{i}": 1} for i in range(40)}
    qrels["q0"].update({f"d{40 + j}": 1 for j in range(5)})  # q0 has 6 positives
    for i in range(20, 25):
        qrels[f"q{i}"] = {"d45": 1}                          # 5 queries share d45
    qrels["q_same"] = {"d46": 1}
    qrels["q_doc"] = {"d47": 1}
    qrels["q30"] = {"dup": 1}                                # text "doc 3", as q3's positive
    data = RetrievalData("dups", corpus, queries, {"train": qrels})
    return TrainPairs.from_split(data, "train")


def _texts(pairs: TrainPairs, batch: list[int]) -> list[str]:
    return [t for i in batch for t in (pairs.query(i), pairs.positive(i))]


@pytest.mark.parametrize("batch_size", [4, 8, 16])
@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_no_text_twice_in_a_batch(batch_size: int, epoch: int) -> None:
    pairs = planted_pairs()
    s = NoDuplicatesSampler(pairs, batch_size=batch_size, seed=5)
    assert isinstance(s, BatchSampler)
    s.set_epoch(epoch)
    batches = s.batches()
    assert len(batches) <= len(s)
    for b in batches:
        texts = _texts(pairs, b)
        own = sum(pairs.query(i) == pairs.positive(i) for i in b)
        assert len(set(texts)) == len(texts) - own, b
    placed = [i for b in batches for i in b]
    assert len(placed) == len(set(placed))                  # each pair at most once
    assert len(placed) + s.last_skipped == len(pairs)
    assert sum(len(b) == batch_size for b in batches) >= len(batches) - 7


def test_planted_duplicates_would_collide_in_random_batches() -> None:
    """The planted data really has duplicates: one batch of everything repeats texts."""
    pairs = planted_pairs()
    texts = _texts(pairs, list(range(len(pairs))))
    assert len(set(texts)) < len(texts) - 10


def test_deterministic_per_seed_and_epoch() -> None:
    pairs = planted_pairs()
    a, b = NoDuplicatesSampler(pairs, 8, seed=1), NoDuplicatesSampler(pairs, 8, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert a.batches() == b.batches()
    b.set_epoch(4)
    assert a.batches() != b.batches()


def test_without_duplicates_it_is_a_plain_shuffle() -> None:
    from tests.samplers.test_ngame import make_pairs

    s = NoDuplicatesSampler(make_pairs(37), batch_size=8, seed=0)
    batches = s.batches()
    assert [len(b) for b in batches] == [8, 8, 8, 8, 5] and s.last_skipped == 0
    assert sorted(i for b in batches for i in b) == list(range(37))
    s = NoDuplicatesSampler(make_pairs(37), batch_size=8, seed=0, drop_last=True)
    assert [len(b) for b in s] == [8, 8, 8, 8]


@pytest.mark.parametrize(("batch_size", "sizes"), [
    (4, [4] * 11 + [3]),   # the random sampler's 12 batches
    (8, [8] * 5 + [7]),    # 6 batches: q0's 6 positives, one per batch
    (16, [8] * 5 + [7]),   # q0's 6 positives need 6 batches, more than the random 3
])
def test_every_pair_exactly_once_in_a_fixed_number_of_batches(batch_size: int,
                                                              sizes: list[int]) -> None:
    pairs = planted_pairs()
    s = NoDuplicatesSampler(pairs, batch_size=batch_size, seed=5)
    for epoch in range(6):
        s.set_epoch(epoch)
        batches = list(s)
        assert [len(b) for b in batches] == sizes and len(s) == len(sizes)
        assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
        assert s.last_skipped == 0
        for b in batches:
            texts = _texts(pairs, b)
            own = sum(pairs.query(i) == pairs.positive(i) for i in b)
            assert len(set(texts)) == len(texts) - own, b
    fx = s.effect()
    assert fx["pairs_skipped"] == 0 and fx["duplicates_avoided"] > 0


def test_drop_last_keeps_full_batches_and_leaves_out_the_shuffles_tail() -> None:
    pairs = planted_pairs()
    s = NoDuplicatesSampler(pairs, batch_size=4, seed=1, drop_last=True)
    batches = list(s)
    assert [len(b) for b in batches] == [4] * 11 == [4] * len(s)
    assert len({i for b in batches for i in b}) == 44


def _pairs(qrels: dict[str, dict[str, int]], queries: dict[str, str],
           docs: dict[str, str]) -> TrainPairs:
    corpus = {d: {"title": "", "text": t} for d, t in docs.items()}
    return TrainPairs.from_split(RetrievalData("x", corpus, queries, {"train": qrels}),
                                 "train")


def test_a_chain_of_shared_texts_is_resolved_by_moving_a_pair() -> None:
    """(A, B) (A, C) (D, C) (D, E): only {1, 3} {2, 4} fits two batches of two; a greedy
    placement that put pairs 1 and 4 together must move one."""
    pairs = _pairs({"q1": {"b": 1, "c": 1}, "q2": {"c2": 1, "e": 1}},
                   {"q1": "A", "q2": "D"}, {"b": "B", "c": "C", "c2": "C", "e": "E"})
    assert len(pairs) == 4
    moved = 0
    for seed in range(40):
        s = NoDuplicatesSampler(pairs, batch_size=2, seed=seed)
        batches = list(s)
        assert sorted(i for b in batches for i in b) == [0, 1, 2, 3], seed
        for b in batches:
            assert len(set(_texts(pairs, b))) == 2 * len(b), (seed, batches)
        moved += s.moves
    assert moved > 0  # some seeds needed a move


def test_a_cycle_of_shared_texts_leaves_a_pair_out_and_says_so() -> None:
    """Texts A, B, C shared around a cycle: (A, B), (B, C), (C, A) conflict pairwise, so two
    batches (each text is held twice) cannot hold them; one sits out and is counted."""
    pairs = _pairs({"qa": {"b": 1}, "qb": {"c": 1}, "qc": {"a": 1}},
                   {"qa": "A", "qb": "B", "qc": "C"}, {"a": "A", "b": "B", "c": "C"})
    s = NoDuplicatesSampler(pairs, batch_size=2, seed=0)
    batches = list(s)
    assert len(s) == 2 and s.last_skipped == 1
    assert sum(len(b) for b in batches) == 2
    assert s.effect()["pairs_skipped"] == 1


def test_large_data_is_fast() -> None:
    import time

    n = 20000
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(n)}
    queries = {f"q{i}": f"query {i}" for i in range(n)}
    qrels = {f"q{i}": ({f"d{i}": 1, f"d{i + 1}": 1} if i % 10 == 0 else {f"d{i}": 1})
             for i in range(n - 1)}
    pairs = TrainPairs.from_split(RetrievalData("big", corpus, queries, {"train": qrels}),
                                  "train")
    s = NoDuplicatesSampler(pairs, batch_size=64, seed=0)
    t0 = time.perf_counter()
    batches = list(s)
    assert time.perf_counter() - t0 < 5.0
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))


def test_too_few_pairs_for_a_full_batch() -> None:
    from tests.samplers.test_ngame import make_pairs

    assert list(NoDuplicatesSampler(make_pairs(3), batch_size=8, drop_last=True)) == []
    assert len(NoDuplicatesSampler(make_pairs(3), batch_size=8)) == 1
