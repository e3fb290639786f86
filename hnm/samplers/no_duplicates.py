"""Batches in which no text appears twice, so a duplicate never acts as a false negative."""

from __future__ import annotations

import numpy as np

from hnm.data.dataset import TrainPairs
from hnm.samplers.random import ModelFreeSampler, check_batch_size, epoch_rng, num_batches


class NoDuplicatesSampler(ModelFreeSampler):
    """A shuffle of the pairs, greedily packed so that no text occurs twice in a batch.

    Each pair has two texts, its query and its positive document. With in-batch negatives a
    repeated text is harmful: the same positive twice in a batch (a query with several
    relevant documents, or two queries sharing one) is scored as a negative of the other
    query. Here the pairs are shuffled (by ``(seed, epoch)``) and batches are filled in that
    order; a pair whose query or positive text is already in the batch is deferred to a later
    batch, where it keeps its place at the front. As in sentence-transformers, queries and
    documents share one set of texts per batch (a query equal to another pair's document also
    counts as a duplicate).

    The epoch has at most ``len(self)`` batches (that of a random sampler); batches are full
    unless the remaining pairs cannot fill them without a duplicate. When duplicates are so
    frequent that pairs are left over after the last batch (e.g. one query with more positives
    than there are batches), those pairs are skipped for this epoch and counted in
    ``last_skipped``; a different shuffle next epoch gives them their turn.

    Args:
        pairs: the training pairs (their query and positive texts are compared).
        batch_size: pairs per batch.
        seed: base seed; each epoch's shuffle uses ``(seed, epoch)``.
        drop_last: drop a final batch shorter than ``batch_size``.

    Reference: sentence-transformers' ``NoDuplicatesBatchSampler`` (its documentation
    recommends it for ``MultipleNegativesRankingLoss``). Departure: the number of batches is
    fixed, so an epoch never runs longer than a random one.

    Recommended with: in-batch losses (``infonce``, ``cached_infonce``) on data with repeated
    queries or shared positives; ``+negatives=false_negative_mask`` covers duplicates that
    appear through explicit negatives or a queue instead.
    """

    def __init__(self, pairs: TrainPairs, batch_size: int, seed: int = 0,
                 drop_last: bool = False) -> None:
        check_batch_size(batch_size)
        self.n = len(pairs)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.last_skipped = 0
        codes: dict[str, int] = {}
        q = [codes.setdefault(t, len(codes)) for t in pairs.query_texts()]
        d = [codes.setdefault(t, len(codes)) for t in pairs.positive_texts()]
        self.keys = np.stack([np.asarray(q, dtype=np.int64), np.asarray(d, dtype=np.int64)], 1)

    def batches(self) -> list[list[int]]:
        """This epoch's batches (what ``__iter__`` yields)."""
        order = epoch_rng(self.seed, self.epoch).permutation(self.n).tolist()
        keys = self.keys.tolist()
        out: list[list[int]] = []
        remaining = order
        while remaining and len(out) < len(self):
            batch: list[int] = []
            seen: set[int] = set()
            deferred: list[int] = []
            stop = len(remaining)
            for at, i in enumerate(remaining):
                if len(batch) == self.batch_size:
                    stop = at
                    break
                a, b = keys[i]
                if a in seen or b in seen:
                    deferred.append(i)
                    continue
                batch.append(i)
                seen.update((a, b))
            remaining = deferred + remaining[stop:]
            if self.drop_last and len(batch) < self.batch_size:
                remaining = batch + remaining
                break
            out.append(batch)
        self.last_skipped = len(remaining)  # pairs in no batch this epoch
        return out

    def __len__(self) -> int:
        return num_batches(self.n, self.batch_size, self.drop_last)
