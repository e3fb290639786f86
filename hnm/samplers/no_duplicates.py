"""Batches in which no text appears twice, so a duplicate never acts as a false negative."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from hnm.data.dataset import TrainPairs
from hnm.samplers.random import ModelFreeSampler, check_batch_size, epoch_rng, num_batches

log = logging.getLogger(__name__)


class NoDuplicatesSampler(ModelFreeSampler):
    """Random batches in which no query or positive text occurs twice; every pair once an epoch.

    Each pair has two texts, its query and its positive document. With in-batch negatives a
    repeated text is harmful: the same positive twice in a batch (a query with several
    relevant documents, or two queries sharing one) is scored as a negative of the other
    query. As in sentence-transformers, queries and documents share one set of texts per batch
    (a query equal to another pair's document also counts as a duplicate; a pair whose query
    equals its own positive is allowed).

    An epoch has the random sampler's batches: the same number, all full but the last (with
    ``drop_last``, the same ``n mod batch_size`` pairs of the shuffle left out), and every
    pair trained exactly once. The pairs are shuffled by ``(seed, epoch)``; pairs that share
    a text with another pair are placed first (those of the most shared texts first), each in
    a random batch (chosen in proportion to its free room) that has room and none of its
    texts, moving one placed pair to another batch when no batch fits (so a batch that
    holds it, or the only pair that clashes, makes room); the pairs whose texts
    are unique then fill the remaining room at random. When one text is shared by more pairs
    than there are batches (one query with more positives than the epoch has batches), the
    epoch gets that many batches instead, of (nearly) equal sizes, so that every pair still
    finds a batch; the number is fixed for the run (Lightning reads it once). Only when the
    duplicates form a structure no move resolves (e.g. texts shared around a cycle) is a pair
    left out of an epoch: counted in ``last_skipped``, in ``effect()['pairs_skipped']`` and
    logged; the next epoch's shuffle gives it its turn.

    Args:
        pairs: the training pairs (their query and positive texts are compared).
        batch_size: pairs per batch.
        seed: base seed; each epoch's shuffle uses ``(seed, epoch)``.
        drop_last: every batch full; the shuffle's last ``n mod batch_size`` pairs sit out.

    Reference: sentence-transformers' ``NoDuplicatesBatchSampler`` (its documentation
    recommends it for ``MultipleNegativesRankingLoss``). Departures: it fills batches in
    shuffle order, skipping a pair that would repeat a text, and ends the epoch with short
    batches of the skipped pairs (more, shorter batches than ``len()``); here the batch count
    and sizes are the random sampler's and the duplicates are spread over the batches.

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
        self.moves = 0  # pairs moved to make room, over the run (telemetry)
        codes: dict[str, int] = {}
        q = [codes.setdefault(t, len(codes)) for t in pairs.query_texts()]
        d = [codes.setdefault(t, len(codes)) for t in pairs.positive_texts()]
        self.keys = np.stack([np.asarray(q, dtype=np.int64), np.asarray(d, dtype=np.int64)], 1)
        # how many pairs hold each text (a pair whose query is its own positive holds it once)
        holders = np.bincount(np.concatenate([self.keys[:, 0], self.keys[:, 1][
            self.keys[:, 1] != self.keys[:, 0]]]), minlength=len(codes))
        self._degree = np.maximum(holders[self.keys[:, 0]], holders[self.keys[:, 1]])
        self.max_holders = int(holders.max()) if len(holders) else 0
        self._last_random_dups: list[int] = []
        self._served = {"duplicates_avoided": 0, "pairs_skipped": 0}

    # ---- sizes ------------------------------------------------------------------------------
    def sizes(self) -> list[int]:
        """Pairs per batch of every epoch (fixed for the run)."""
        n, bs = self.n, self.batch_size
        base = num_batches(n, bs, self.drop_last)
        if base == 0:  # no pairs, or fewer than one full batch with drop_last
            return []
        count = max(base, self.max_holders)
        if count == base:
            return [bs] * base if self.drop_last else [bs] * (base - 1) + [n - (base - 1) * bs]
        return [n // count + (b < n % count) for b in range(count)]

    def __len__(self) -> int:
        return len(self.sizes())

    # ---- batches ----------------------------------------------------------------------------
    def batches(self) -> list[list[int]]:
        """This epoch's batches (what ``__iter__`` yields)."""
        rng = epoch_rng(self.seed, self.epoch)
        sizes = self.sizes()
        order = rng.permutation(self.n)[:sum(sizes)]  # drop_last: the shuffle's tail sits out
        self._last_random_dups = self._random_duplicates(order, sizes)
        # free slots in a random order: the next one is a batch drawn in proportion to its room
        slots = rng.permutation(np.repeat(np.arange(len(sizes)), sizes)).tolist()
        out: list[list[int]] = [[] for _ in sizes]
        seen: list[set[int]] = [set() for _ in sizes]
        shared = order[self._degree[order] > 1]
        shared = shared[np.argsort(-self._degree[shared], kind="stable")]
        skipped, k = [], 0
        for i in shared.tolist():
            texts = set(self.keys[i].tolist())
            j = next((j for j in range(k, len(slots)) if not texts & seen[slots[j]]), None)
            if j is not None:
                b = slots[j]
            else:
                moved = self._make_room(texts, out, seen, slots, k)
                if moved is None:
                    skipped.append(i)
                    continue
                j, b = moved
                self.moves += 1
            slots[k], slots[j] = slots[j], slots[k]  # slots[:k]: taken; slots[k:]: free
            k += 1
            out[b].append(i)
            seen[b] |= texts
        unique = order[self._degree[order] <= 1].tolist()
        for i, b in zip(unique, slots[k:]):
            out[b].append(i)
        if skipped:
            log.warning("no_duplicates: %d pair(s) found no batch without a duplicate text in "
                        "epoch %d and sit out this epoch", len(skipped), self.epoch)
        self.last_skipped = len(skipped)
        return [b for b in out if b]

    def _make_room(self, texts: set[int], out: list[list[int]], seen: list[set[int]],
                   slots: list[int], k: int) -> tuple[int, int] | None:
        """Make a place for a pair with ``texts`` that fits no batch with a free slot: in a
        batch ``b`` that is full without its texts, or holds exactly one pair ``r`` with one
        of them, move ``r`` (or one of ``b``'s pairs) to a batch with a free slot and none of
        ``r``'s texts. Returns (position of the free slot taken, ``b``), or None."""
        free = {slots[j]: j for j in range(k, len(slots))}  # a free slot of each open batch
        for b in range(len(out)):
            clash = [r for r in out[b] if texts & set(self.keys[r].tolist())]
            if len(clash) > 1 or (not clash and b in free):
                continue
            for r in clash or out[b]:
                mine = set(self.keys[r].tolist())
                a = next((a for a in free if a != b and not mine & seen[a]), None)
                if a is None:
                    continue
                out[b].remove(r)
                seen[b] -= mine
                out[a].append(r)
                seen[a] |= mine
                return free[a], b
        return None

    def _random_duplicates(self, order: np.ndarray, sizes: list[int]) -> list[int]:
        """Per batch of the plain cut of this shuffle: pairs that would repeat a text."""
        pos = np.arange(len(order))
        batch = np.repeat(np.arange(len(sizes)), sizes)
        q, d = self.keys[order, 0], self.keys[order, 1]
        two = d != q
        text = np.concatenate([q, d[two]])
        at = np.concatenate([pos, pos[two]])
        b = batch[at]
        idx = np.lexsort((at, text, b))
        repeat = np.zeros(len(idx), dtype=bool)
        repeat[1:] = (b[idx][1:] == b[idx][:-1]) & (text[idx][1:] == text[idx][:-1])
        dup = np.zeros(len(order), dtype=bool)
        dup[at[idx][repeat]] = True
        return np.bincount(batch[dup], minlength=len(sizes)).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        dups = self._last_random_dups
        for b, batch in enumerate(batches):
            if b == 0:
                self._served["pairs_skipped"] += self.last_skipped
            self._served["duplicates_avoided"] += dups[b] if b < len(dups) else 0
            yield batch

    # ---- what it changed --------------------------------------------------------------------
    def effect(self) -> dict[str, float]:
        """``duplicates_avoided``: pairs that, in the batches served so far, would have repeated
        a text of their batch had the same shuffle been cut into batches in order (the random
        sampler); ``pairs_skipped``: pairs that found no batch (normally 0). Both 0 on data
        without duplicates, where this sampler is a plain shuffle."""
        return {key: float(v) for key, v in self._served.items()}
