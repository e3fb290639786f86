"""In-memory retrieval dataset (BEIR layout) and the training pairs derived from it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from hnm.errors import DataError

log = logging.getLogger(__name__)


def _example(kind: str, name: str, where: str | None) -> str:
    """``query 'q7' (FILE line 12)``: an unknown id of a qrels warning, with its line if known."""
    return f"{kind} {name!r}" + (f" ({where})" if where else "")


@dataclass
class RetrievalData:
    """A corpus, its queries and graded relevance judgements per split.

    Attributes:
        name: short dataset name used in metric keys (``test/{name}/ndcg@10``).
        corpus: doc id -> {"title": str, "text": str}.
        queries: query id -> query text.
        qrels: split -> query id -> doc id -> graded relevance (int, > 0 is relevant).
    """

    persistent = False  # rebuilt from the configuration, never part of a checkpoint

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def doc_text(self, doc_id: str) -> str:
        """Text fed to the encoder for a document: ``title: text`` when a title exists."""
        doc = self.corpus[doc_id]
        title = doc.get("title") or ""
        return f"{title}: {doc['text']}" if title else doc["text"]

    def split(self, name: str) -> dict[str, dict[str, int]]:
        if name not in self.qrels:
            raise DataError(
                f"dataset {self.name!r} has no {name!r} split; available splits: "
                f"{', '.join(sorted(self.qrels)) or 'none'}"
            )
        return self.qrels[name]

    def check_qrels(self, source: str = "",
                    lines: dict[str, dict[tuple[str, str], str]] | None = None) -> None:
        """Drop judgements that reference unknown query or document ids, with a warning.

        ``lines`` (split -> (query id, doc id) -> ``"FILE line N"``), where the loader knows
        them, puts the line of each example in the warning.
        Raises :class:`DataError` when a split is left without any judgement.
        """
        where = f" in {source}" if source else ""
        for split, qrels in list(self.qrels.items()):
            at = (lines or {}).get(split, {})
            bad_q = [q for q in qrels if q not in self.queries]
            bad_d = sum(1 for q in qrels for d in qrels[q] if d not in self.corpus)
            if bad_q or bad_d:
                examples = [_example("query", q, at.get((q, next(iter(qrels[q]), ""))))
                            for q in bad_q[:3]] + [
                    _example("document", d, at.get((q, d))) for q in qrels for d in qrels[q]
                    if d not in self.corpus][:3]
                log.warning(
                    "qrels/%s%s: %d judgement(s) reference unknown query ids and %d unknown "
                    "document ids (e.g. %s); they are skipped",
                    split, where, sum(len(qrels[q]) for q in bad_q), bad_d, ", ".join(examples),
                )
            cleaned = {
                q: {d: int(r) for d, r in docs.items() if d in self.corpus}
                for q, docs in qrels.items() if q in self.queries
            }
            cleaned = {q: docs for q, docs in cleaned.items() if docs}
            if qrels and not cleaned:
                raise DataError(
                    f"qrels/{split}{where}: none of its {sum(map(len, qrels.values()))} "
                    "judgements reference a known query and document; check that the ids in "
                    "qrels match corpus.jsonl '_id' and queries.jsonl '_id'"
                )
            self.qrels[split] = cleaned


@dataclass
class TrainPairs:
    """(query, positive document) training pairs, one per relevant judgement.

    ``positives[qid]`` holds *every* known positive of a query (for false-negative masking and
    for excluding positives from mined negatives), while each pair names one of them.
    """

    persistent = False  # rebuilt from the configuration, never part of a checkpoint

    data: RetrievalData
    qids: list[str]
    pos_ids: list[str]
    positives: dict[str, set[str]]

    @classmethod
    def from_split(cls, data: RetrievalData, split: str = "train",
                   max_pairs: int | None = None, seed: int = 0) -> TrainPairs:
        import random

        qrels = data.split(split)
        pairs = [(q, d) for q in sorted(qrels) for d, r in sorted(qrels[q].items()) if r > 0]
        if max_pairs is not None and 0 < max_pairs < len(pairs):
            rng = random.Random(seed)
            pairs = sorted(rng.sample(pairs, max_pairs))
        if not pairs:
            raise DataError(
                f"dataset {data.name!r}: the {split!r} split has no positive (relevance > 0) "
                "judgement, so there is nothing to train on"
            )
        positives: dict[str, set[str]] = {}
        for q, docs in qrels.items():
            positives[q] = {d for d, r in docs.items() if r > 0}
        return cls(data, [q for q, _ in pairs], [d for _, d in pairs], positives)

    def __len__(self) -> int:
        return len(self.qids)

    def query(self, i: int) -> str:
        return self.data.queries[self.qids[i]]

    def positive(self, i: int) -> str:
        return self.data.doc_text(self.pos_ids[i])

    def query_texts(self) -> list[str]:
        return [self.data.queries[q] for q in self.qids]

    def positive_texts(self) -> list[str]:
        return [self.data.doc_text(d) for d in self.pos_ids]
