"""Train/eval leakage: exact and near-duplicate overlap between training pairs and an eval split.

Two checks, each counted from the evaluation side (how many eval items have a copy in training):

- **queries**: training queries vs evaluation queries;
- **positives**: training positive documents vs evaluation positive documents.

Texts are normalised (Unicode NFKC, case-folded, every run of non-alphanumeric characters a
single space). An *exact* duplicate has the same normalised text (the same id in both splits
counts too). A *near* duplicate has shingle-set Jaccard similarity (or containment, see
:class:`LeakageCheck`) at or above a threshold. Shingles are word or character n-grams of
the normalised text; a text shorter than ``n`` is one shingle.

This follows the overlap tests of contamination and deduplication studies: n-gram overlap
between training and test text (Brown et al., 2020, "Language Models are Few-Shot Learners",
appendix C: 13-gram collisions) and near-duplicates as word 5-gram Jaccard >= 0.8 (Lee et al.,
ACL 2022, "Deduplicating Training Data Makes Language Models Better"). Departures: similarity
is computed exactly, not estimated with MinHash: the shingle sets become sparse binary
matrices over the eval side's shingle vocabulary, and one sparse product per chunk of training
texts gives every pair's intersection size. The eval side is usually small, so this stays fast
(about a second for all ~2,600 stdlib_code training pairs) and has no false negatives.
Short texts such as queries default to character 5-grams, which tolerate one changed word;
documents to word 5-grams.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from hnm.data.dataset import RetrievalData, TrainPairs
from hnm.errors import ConfigError, check_choice

UNITS = ("word", "char")
MEASURES = ("jaccard", "containment")
_NON_ALNUM = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """NFKC, case-folded, every run of non-alphanumeric characters one space, stripped."""
    return _NON_ALNUM.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str, unit: str = "word", n: int = 5, normalized: bool = False) -> set[str]:
    """The set of word or character ``n``-grams of ``normalize(text)`` (empty for no text);
    ``normalized=True`` skips the normalisation of an already normalised text."""
    norm = text if normalized else normalize(text)
    if not norm:
        return set()
    items: Sequence[str] = norm.split() if unit == "word" else norm
    if len(items) <= n:
        return {" ".join(items) if unit == "word" else norm}
    if unit == "word":
        return {" ".join(items[i:i + n]) for i in range(len(items) - n + 1)}
    return {norm[i:i + n] for i in range(len(norm) - n + 1)}


def best_matches(train: Sequence[set[str]], evals: Sequence[set[str]], threshold: float,
                 measure: str = "jaccard", chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each eval shingle set, its most similar training set at or above ``threshold``.

    Returns:
        ``(similarity, train_index)``, both of length ``len(evals)``; ``-1`` / ``0.0`` where no
        training set reaches the threshold. Ties go to the lowest training index.
    """
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, s in enumerate(evals):
        for g in s:
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    e_size = np.array([len(s) for s in evals], dtype=np.float64)
    mat_e = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                              shape=(len(evals), max(len(vocab), 1))).T.tocsc()
    best = np.zeros(len(evals))
    arg = np.full(len(evals), -1, dtype=np.int64)
    for start in range(0, len(train), chunk):
        part = train[start:start + chunk]
        t_rows, t_cols = [], []
        for i, s in enumerate(part):
            hits = [vocab[g] for g in s if g in vocab]
            t_rows += [i] * len(hits)
            t_cols += hits
        mat_t = sparse.csr_matrix((np.ones(len(t_rows), np.float32), (t_rows, t_cols)),
                                  shape=(len(part), mat_e.shape[0]))
        inter = (mat_t @ mat_e).tocoo()
        if inter.nnz == 0:
            continue
        t_size = np.array([len(s) for s in part], dtype=np.float64)[inter.row]
        ev_size = e_size[inter.col]
        if measure == "jaccard":
            sim = inter.data / (t_size + ev_size - inter.data)
        else:
            sim = inter.data / np.minimum(t_size, ev_size)
        keep = sim >= threshold
        for t, e, s in sorted(zip(inter.row[keep] + start, inter.col[keep], sim[keep])):
            if s > best[e]:
                best[e], arg[e] = s, t
    return best, arg


@dataclass
class Overlap:
    """Overlap of one kind (``queries`` or ``positives``) between training and evaluation.

    ``matches`` lists ``(eval_id, train_id, similarity, exact)`` for every eval item with an
    exact or near duplicate in training, most similar first.
    """

    kind: str
    n_train: int
    n_eval: int
    matches: list[tuple[str, str, float, bool]] = field(default_factory=list)

    @property
    def exact(self) -> int:
        return sum(1 for m in self.matches if m[3])

    @property
    def near(self) -> int:
        return sum(1 for m in self.matches if not m[3])


class LeakageCheck:
    """Finds evaluation queries and positive documents duplicated in the training pairs.

    Args:
        threshold: similarity at or above which two texts are near-duplicates (0 < t <= 1).
        measure: ``jaccard`` (|A∩B| / |A∪B|, symmetric) or ``containment`` (|A∩B| /
            min(|A|, |B|): also flags a text copied inside a longer one).
        query_unit, query_n: shingles of queries (default character 5-grams).
        doc_unit, doc_n: shingles of documents (default word 5-grams).

    Calling it with a dataset, the training pairs and the eval split returns one
    :class:`Overlap` per kind. Recommended before any result on a new dataset, and kept on (as
    a warning) in ``hnm train`` through ``data.leakage_check``.
    """

    def __init__(self, threshold: float = 0.8, measure: str = "jaccard", query_unit: str = "char",
                 query_n: int = 5, doc_unit: str = "word", doc_n: int = 5) -> None:
        check_choice("leakage.measure", measure, MEASURES)
        check_choice("leakage.query_unit", query_unit, UNITS)
        check_choice("leakage.doc_unit", doc_unit, UNITS)
        if not 0.0 < float(threshold) <= 1.0 or int(query_n) < 1 or int(doc_n) < 1:
            raise ConfigError(f"leakage.threshold must be in (0, 1] and the n-gram sizes >= 1; "
                              f"got threshold={threshold}, query_n={query_n}, doc_n={doc_n}")
        self.threshold, self.measure = float(threshold), measure
        self.query = (query_unit, int(query_n))
        self.doc = (doc_unit, int(doc_n))

    def __call__(self, data: RetrievalData, pairs: TrainPairs, eval_split: str) -> list[Overlap]:
        qrels = data.split(eval_split)
        eval_q = sorted(q for q, docs in qrels.items()
                        if q in data.queries and any(r > 0 for r in docs.values()))
        eval_d = sorted({d for q in eval_q for d, r in qrels[q].items()
                         if r > 0 and d in data.corpus})
        train_q = sorted(set(pairs.qids))
        train_d = sorted(set(pairs.pos_ids))
        return [self.compare("queries", train_q, eval_q, data.queries.__getitem__, self.query),
                self.compare("positives", train_d, eval_d, data.doc_text, self.doc)]

    def compare(self, kind: str, train_ids: list[str], eval_ids: list[str], text, shingling
                ) -> Overlap:
        """Exact then near duplicates of each eval item among the training items."""
        train_norm = [normalize(text(t)) for t in train_ids]
        first: dict[str, str] = {}
        for t, norm in zip(train_ids, train_norm):
            first.setdefault(norm, t)
        out = Overlap(kind, len(train_ids), len(eval_ids))
        rest, rest_norm = [], []
        for e in eval_ids:
            norm = normalize(text(e))
            if norm and norm in first:
                out.matches.append((e, first[norm], 1.0, True))
            else:
                rest.append(e)
                rest_norm.append(norm)
        unit, n = shingling
        sims, idx = best_matches([shingles(t, unit, n, normalized=True) for t in train_norm],
                                 [shingles(e, unit, n, normalized=True) for e in rest_norm],
                                 self.threshold, self.measure)
        out.matches += [(e, train_ids[j], float(s), False)
                        for e, s, j in zip(rest, sims, idx) if j >= 0]
        out.matches.sort(key=lambda m: (not m[3], -m[2], m[0]))
        return out


def summary(overlaps: Sequence[Overlap], eval_split: str = "test") -> str:
    """One line: the exact and near duplicate counts of each kind."""
    parts = [f"{o.exact} exact + {o.near} near of {o.n_eval} {eval_split} {o.kind} "
             f"({(o.exact + o.near) / max(o.n_eval, 1):.1%})" for o in overlaps]
    return "; ".join(parts)


# the share of evaluation queries (or positives) duplicated in training at which the leakage
# line of ``hnm train`` is a warning; below it, an info line (an exact copy of an evaluation
# query is a warning at any share)
LEAKAGE_WARN_SHARE = 0.01


def serious(overlaps: Sequence[Overlap]) -> bool:
    """Whether the overlap is worth a warning: an evaluation query copied exactly into
    training, or a share of duplicated queries or positives of ``LEAKAGE_WARN_SHARE`` or more.
    One near-duplicate in a few hundred depends on which pairs a seed drew; it stays info."""
    return any((o.kind == "queries" and o.exact > 0)
               or (o.exact + o.near) / max(o.n_eval, 1) >= LEAKAGE_WARN_SHARE
               for o in overlaps)


def warn_leakage(data: RetrievalData, pairs: TrainPairs, eval_split: str,
                 check: LeakageCheck | None = None, examples: int = 3) -> list[Overlap]:
    """Run the check as ``hnm train`` does: one log line, a warning when the overlap is
    :func:`serious`, else info; the top ``examples`` of each kind at debug level."""
    import logging

    log = logging.getLogger(__name__)
    overlaps = (check or LeakageCheck())(data, pairs, eval_split)
    found = any(o.matches for o in overlaps)
    (log.warning if serious(overlaps) else log.info)(
        "leakage check (train pairs vs %s split of %s): %s%s", eval_split, data.name,
        summary(overlaps, eval_split), "; details: hnm data check" if found else "")
    for o in overlaps:
        for e, t, s, exact in o.matches[:examples]:
            log.debug("leakage %s: eval %s ~ train %s (%s, similarity %.3f)", o.kind, e, t,
                      "exact" if exact else "near", s)
    return overlaps
