"""Taxonomy negatives: siblings, cousins and random documents of the positive in a hierarchy
read from document metadata."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError, DataError, check_range
from hnm.miners.base import MinerBase
from hnm.types import EmbedFn

TIERS: tuple[str, ...] = ("siblings", "cousins", "random")


class TaxonomyMiner(MinerBase):
    """Negatives drawn from a hierarchy over the documents, by a mix of three tiers.

    Every document with the metadata ``field`` has a path: the field's value split at
    ``separator`` (for ``stdlib_code`` the title ``module.Class.function``, e.g.
    ``json.decoder.JSONDecoder.decode``; for a BEIR corpus or HF dataset a named field kept with
    ``data.source.fields=[NAME]``). Relative to a pair's positive with path ``P``:

    - **siblings** share its parent (``path[:-1] == P[:-1]``, a parent of at least one part):
      the other methods of the same class, the other functions of the same module;
    - **cousins** share its grandparent (the path starts with ``P[:-2]``, at least one part) and
      are not siblings: the rest of the same module for a method, the same package for a
      module-level function;
    - **random**: any corpus document (as every miner's padding).

    Each pair gets ``round(mix · num_negatives)`` of each tier (largest remainders), drawn
    without replacement every epoch (seeded by ``(seed, epoch, pair)``), listed siblings first,
    then cousins, then random ones. A tier with too few documents hands its share to the next
    (siblings to cousins to random). Known positives of the query are never drawn. The miner
    uses no encoder and no score; a document without the field, or with a one-part path, has no
    siblings or cousins. A configuration under which no pair has any sibling or cousin is
    refused before training (:class:`~hnm.errors.ConfigError`, or
    :class:`~hnm.errors.DataError` when no document has the field).

    :meth:`effect` reports ``negatives_siblings``, ``negatives_cousins``, ``negatives_random``
    (by the mix) and ``negatives_padded`` (random documents that filled a short tier), and
    ``negatives_attached`` (siblings plus cousins).

    Implements the taxonomy-based negative sampling of Decorte et al., "Design of Negative
    Sampling Strategies for Distantly Supervised Skill Extraction" (RecSys in HR workshop,
    2022), where the negatives of a skill are its siblings in the ESCO taxonomy or random
    skills. Departures: the hierarchy is any dotted path in document metadata rather than ESCO;
    cousins are an added tier between siblings and random; the negatives feed whichever loss is
    configured (with in-batch negatives), not the paper's binary classifier. The rank window,
    score filters, ``sampling_strategy`` and ``miner.schedule`` of the ranked miners do not
    apply (no ranking exists): a curriculum and ``teacher_scores`` are refused.

    Why it leaves the shared pipeline of :class:`~hnm.miners.base.MinerBase` half-way: there
    is no ranking, so no search, rank window, score filters or ranked pool to sample from;
    :meth:`mine` and :meth:`negatives` are its own. It keeps the rest: the index of the
    training data (:meth:`setup`), the padding with random documents (:meth:`random_docs`,
    never a known positive) and the counters of :meth:`effect`.

    Args:
        field: the document field holding the path (``title`` by default).
        separator: splits the field's value into path parts.
        mix: the tiers' shares, ``{siblings: …, cousins: …, random: …}`` (>= 0, normalised to
            sum 1; missing tiers are 0).
        **kwargs: ``num_negatives``, ``seed``, ``verbose`` of :class:`~hnm.miners.base.MinerBase`.

    Recommended where the corpus has a meaningful hierarchy (code by module and class, products
    by category, skills or diseases by taxonomy), with InfoNCE and a few negatives per pair.
    """

    uses_encoder = False

    def __init__(self, field: str = "title", separator: str = ".",
                 mix: Mapping[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.schedule != "constant":
            raise ConfigError(f"miner.schedule={self.schedule}: taxonomy negatives have no rank "
                              "for a curriculum to move over; use miner.schedule=constant")
        if self.teacher_scores:
            raise ConfigError("miner.teacher_scores=true: taxonomy negatives have no scores")
        if not str(separator):
            raise ConfigError("miner.separator='' is not valid; expected the path separator")
        raw = dict(mix) if mix is not None else {"siblings": 0.5, "cousins": 0.3, "random": 0.2}
        unknown = set(raw) - set(TIERS)
        if unknown:
            raise ConfigError(f"miner.mix has unknown tiers {sorted(unknown)}; expected "
                              f"{', '.join(TIERS)}")
        for tier, share in raw.items():
            check_range(f"miner.mix.{tier}", share, 0.0)
        total = sum(float(v) for v in raw.values())
        if total <= 0 or float(raw.get("siblings", 0)) + float(raw.get("cousins", 0)) <= 0:
            raise ConfigError(f"miner.mix={raw}: give siblings or cousins a positive share (all "
                              "random is no taxonomy; use a miner-less run for that)")
        self.field, self.separator = str(field), str(separator)
        self.mix = {t: float(raw.get(t, 0.0)) / total for t in TIERS}
        self.quota = _split(self.num_negatives, self.mix)
        for tier in TIERS:
            self.counters[f"negatives_{tier}"] = 0

    # -- the hierarchy ----------------------------------------------------------------------
    def mine(self, data: RetrievalData, pairs: TrainPairs, embed_queries: EmbedFn,
             embed_docs: EmbedFn) -> dict[str, float]:
        """Read every document's path and each pair's sibling and cousin candidates."""
        self.setup(data, pairs)
        paths = [self.path(data.corpus[d]) for d in self.doc_ids]
        if not any(paths):
            raise DataError(
                f"miner.field={self.field!r}: no document of dataset {data.name!r} has this "
                "field, so there is no hierarchy; for a BEIR folder or HF dataset keep it with "
                f"data.source.fields=[{self.field}]")
        by_parent: dict[tuple[str, ...], list[int]] = defaultdict(list)
        by_prefix: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for row, p in enumerate(paths):
            if len(p) >= 2:
                by_parent[p[:-1]].append(row)
                for n in range(1, len(p)):
                    by_prefix[p[:n]].append(row)
        self.tiers: list[tuple[np.ndarray, np.ndarray]] = []
        for pair, pos in enumerate(pairs.pos_ids):
            p = paths[self.doc_row[pos]] if pos in self.doc_row else ()
            banned = {int(d) for d in self.pos_d[self.positive_slots(int(self.pair_qrow[pair]))]}
            sib: list[int] = by_parent.get(p[:-1], []) if len(p) >= 2 else []
            sib_set = set(sib)
            cousins = [r for r in by_prefix.get(p[:-2], []) if r not in sib_set] \
                if len(p) >= 3 else []
            self.tiers.append((np.array([r for r in sib if r not in banned], dtype=np.int64),
                               np.array([r for r in cousins if r not in banned], np.int64)))
        n_sib = np.array([len(s) for s, _ in self.tiers])
        n_cou = np.array([len(c) for _, c in self.tiers])
        if not (n_sib.sum() or n_cou.sum()):
            raise ConfigError(
                f"miner=taxonomy: no training pair's positive has a sibling or cousin under "
                f"miner.field={self.field!r} split at {self.separator!r} ({sum(map(bool, paths))}"
                f" of {len(paths)} documents have a path; the longest has "
                f"{max(map(len, paths))} parts), so every negative would be random. Check "
                "miner.field and miner.separator")
        self.last_stats = {"documents_with_path": float(sum(map(bool, paths))),
                           "pairs_with_siblings": float((n_sib > 0).sum()),
                           "pairs_with_cousins": float((n_cou > 0).sum()),
                           "mean_siblings": float(n_sib.mean()), "mean_cousins": float(n_cou.mean())}
        return self.last_stats

    def path(self, doc: Mapping[str, str]) -> tuple[str, ...]:
        """A document's path: its field split at the separator (empty without the field)."""
        value = str(doc.get(self.field) or "").strip()
        return tuple(p for p in value.split(self.separator) if p) if value else ()

    # -- per-step negatives -----------------------------------------------------------------
    def negatives(self, pair_idx: Sequence[int], epoch: int, step: int
                  ) -> tuple[list[list[str]], np.ndarray | None]:
        """``num_negatives`` ids per pair: siblings, then cousins, then random documents."""
        if not hasattr(self, "tiers"):
            raise RuntimeError("TaxonomyMiner.negatives() called before mine()")
        return [[self.doc_ids[r] for r in self.pair_tiers(int(p), epoch)] for p in pair_idx], None

    def pair_tiers(self, pair: int, epoch: int) -> list[int]:
        """Corpus rows of one pair's negatives in ``epoch`` (deterministic), in tier order."""
        rng = np.random.default_rng((self.seed, epoch, pair, 2))
        sib, cousins = self.tiers[pair]
        rows = _draw(rng, sib, self.quota["siblings"])
        n_sib = len(rows)
        want = self.quota["siblings"] + self.quota["cousins"]  # a short tier hands on its share
        rows += _draw(rng, cousins, want - n_sib)
        n_cou = len(rows) - n_sib
        rows += self.random_docs(pair, epoch, self.num_negatives - len(rows), set(rows))
        self.counters["negatives_siblings"] += n_sib
        self.counters["negatives_cousins"] += n_cou
        self.counters["negatives_random"] += self.quota["random"]
        self.counters["negatives_padded"] += want - n_sib - n_cou
        self.counters["negatives_attached"] += n_sib + n_cou
        return rows

    def effect(self) -> dict[str, float]:
        """Negatives handed out per tier (see the class docstring)."""
        keys = ["negatives_attached", "negatives_padded", *(f"negatives_{t}" for t in TIERS)]
        return self.counters.figures(keys)

    def records(self) -> Iterator[dict[str, Any]]:
        """One record per unique query (its first pair): siblings then cousins, unscored."""
        first: dict[int, int] = {}
        for pair, q in enumerate(self.pair_qrow):
            first.setdefault(int(q), pair)
        for q, qid in enumerate(self.qids):
            sib, cousins = self.tiers[first[q]]
            sl = self.positive_slots(q)
            rows = [*sib.tolist(), *cousins.tolist()]
            yield {"qid": qid, "pos_ids": [self.doc_ids[int(self.pos_d[s])]
                                           for s in range(sl.start, sl.stop)],
                   "pos_scores": [None] * (sl.stop - sl.start),
                   "neg_ids": [self.doc_ids[r] for r in rows], "neg_scores": [None] * len(rows)}


def _draw(rng: np.random.Generator, rows: np.ndarray, n: int) -> list[int]:
    """Up to ``n`` of ``rows`` without replacement, in a seeded random order."""
    if n <= 0 or not len(rows):
        return []
    take = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    return [int(rows[i]) for i in take]


def _split(k: int, mix: Mapping[str, float]) -> dict[str, int]:
    """``k`` split by ``mix`` with the largest-remainder method (ties: tier order)."""
    exact = {t: k * mix[t] for t in TIERS}
    out = {t: int(exact[t]) for t in TIERS}
    left = k - sum(out.values())
    for t in sorted(TIERS, key=lambda t: (-(exact[t] - out[t]), TIERS.index(t)))[:left]:
        out[t] += 1
    return out
