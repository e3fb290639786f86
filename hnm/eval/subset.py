"""A fixed, seeded sub-dataset for evaluations repeated during training (learning curves).

Evaluating the whole corpus at every curve point costs a full corpus pass each time (about a
minute for MiniLM on 2 CPU cores at 4,000 documents). :func:`eval_subset` keeps ``max_queries``
judged queries of a split and a corpus of at most ``max_docs`` documents: every document judged
for the kept queries, then distractors drawn at random. The subset depends only on the seed, so
every run and every curve point of a comparison sees the same queries and documents; its
metrics are higher than the full corpus's (fewer distractors) and comparable only with each
other, which is what a curve needs.
"""

from __future__ import annotations

import random

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError


def eval_subset(data: RetrievalData, split: str, max_queries: int | None = None,
                max_docs: int | None = None, seed: int = 0) -> RetrievalData:
    """``data`` restricted to ``max_queries`` judged queries of ``split`` and a corpus of at
    most ``max_docs`` documents (None: all); the split keeps its name, other splits are
    dropped. Raises :class:`ConfigError` when the kept queries' judged documents alone exceed
    ``max_docs``."""
    qrels = data.split(split)
    qids = sorted(q for q in qrels if q in data.queries and qrels[q])
    rng = random.Random(seed)
    if max_queries is not None and 0 < max_queries < len(qids):
        qids = sorted(rng.sample(qids, max_queries))
    judged = sorted({d for q in qids for d in qrels[q] if d in data.corpus})
    if max_docs is None or max_docs >= len(data.corpus):
        doc_ids = list(data.corpus)
    else:
        if len(judged) > max_docs:
            raise ConfigError(f"eval.val_corpus={max_docs} is smaller than the {len(judged)} "
                              f"documents judged for the {len(qids)} curve queries; raise it "
                              "or lower eval.val_queries")
        keep = set(judged)
        others = sorted(d for d in data.corpus if d not in keep)
        keep.update(rng.sample(others, max_docs - len(judged)))
        doc_ids = [d for d in data.corpus if d in keep]  # the corpus's own order
    return RetrievalData(name=data.name, corpus={d: data.corpus[d] for d in doc_ids},
                         queries={q: data.queries[q] for q in qids},
                         qrels={split: {q: dict(qrels[q]) for q in qids}})
