"""ADORE: per-step hard negatives from a fixed document index and the training query encoder."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from hnm.errors import ConfigError, check_range
from hnm.miners.base import MinerBase
from hnm.miners.corpus import lowest_positive_score
from hnm.miners.filters import Pool, apply_filters, dropped_by_score
from hnm.types import EmbedFn, TrainingView

log = logging.getLogger(__name__)

# why ``doc_encoder: null`` (the YAML's default) refuses to start, and what to give instead
NO_DOC_ENCODER = (
    "+miner=adore trains the query encoder only, against a fixed document index, so it needs "
    "a document encoder already trained on this data (the paper's is STAR's); none was given "
    "(miner.doc_encoder is null). With the starting model's document side frozen instead, "
    "ADORE fine-tunes half the model (1,000 texts with gradient against the baseline's 2,000) "
    "and scored nDCG@10 -0.0200 [-0.0355, -0.0045] below the baseline on stdlib_code dev, "
    "below it on each of 3 seeds. The paper's pipeline: train first (hnm train), then start "
    "from that model with its document side frozen: hnm train encoder=hf "
    "encoder.name=RUN/model +miner=adore miner.doc_encoder='${encoder}'. Or give another "
    "trained document encoder: miner.doc_encoder='{_target_: hnm.encoders.factory.hf_encoder, "
    "name: PATH}' (same embedding size as the encoder being trained). To run it deliberately "
    "from the starting model anyway: miner.doc_encoder='${encoder}'")


class AdoreMiner(MinerBase):
    """Dynamic hard negatives: the query encoder trains, the document index stays fixed.

    Before training the corpus is encoded once and indexed with the given document encoder
    (``doc_encoder``, frozen). The miner declares it as the training module's ``doc_encoder``
    (:meth:`models`), so positives and negatives are embedded by the same frozen encoder that
    built the index and only the query encoder receives gradients. At every training step the
    batch's queries are embedded with the *current* query encoder (no gradient), the fixed index
    is searched, known positives are excluded and the shared filters of
    :class:`~hnm.miners.base.MinerBase` apply (rank window, margins, ``top``/``random``); the
    result replaces those queries' pools and their negatives are handed out. The miner's scores
    (current query · frozen document) are available as teacher scores. ADORE goes through the
    shared pipeline: the first pass is the shared mining, and each step's re-retrieval passes
    the same rank window and filters before the shared sampling, padding and counting (only the
    search differs: the batch's queries against the fixed index). The frozen document encoder is
    listed by :meth:`frozen_models`, so it is in eval mode at every step; :meth:`effect` adds
    ``queries_retrieved_live`` (query retrievals with the current query encoder, summed over
    steps) to the shared figures, and ``candidates_dropped`` sums the score filters over every
    step's retrieval.

    Implements ADORE (Zhan et al., SIGIR 2021, "Optimizing Dense Retrieval Model Training with
    Hard Negatives"): with fixed document embeddings, retrieval with the current query encoder
    yields the negatives that the model actually ranks highest at this step, which directly
    optimises the ranking it will be evaluated on. Departures: ADORE trains with a
    LambdaLoss-style listwise loss on the top-200 retrieved documents and starts from a
    trained (STAR) model; here the negatives feed whichever loss is configured (with in-batch
    negatives, all embedded by the frozen document encoder), and the trained model is the
    user's to give (``miner.doc_encoder``, and ``encoder`` for the query side). Evaluation
    after training embeds the corpus with the frozen document encoder and the queries with
    the trained one, and the run saves both (``model/`` and ``doc_model/``).

    The document encoder is given (``doc_encoder``): the YAML's ``doc_encoder: null`` refuses
    to start (:data:`NO_DOC_ENCODER`), since the starting model's own document side, frozen,
    scored below the baseline on every seed (the paper freezes a document encoder already
    trained on the data). ``miner.doc_encoder='${encoder}'`` gives a fresh frozen copy of the
    run's starting encoder (the paper's pipeline when ``encoder`` is a model trained first);
    the very object being trained is replaced by a frozen deep copy.

    Args:
        doc_encoder: the frozen document encoder (a SentenceTransformer with the query
            encoder's embedding size); ``None`` refuses to start.
        batch_size: encoder batch size for the per-step query embedding.
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`; ADORE's defaults
            are ``sampling_strategy=top`` (the hardest negatives of the current step).

    Recommended with InfoNCE over in-batch plus mined negatives and a trained starting model
    (a random one retrieves noise); ``range_min`` a few ranks to skip likely false negatives.
    """

    not_state = ("_doc_encoder",)  # models it holds, not its state (hnm.state)

    keep_index = True

    def __init__(self, doc_encoder: Any = None, batch_size: int = 64,
                 sampling_strategy: str = "top", **kwargs: Any) -> None:
        if doc_encoder is None:
            raise ConfigError(NO_DOC_ENCODER)
        super().__init__(sampling_strategy=sampling_strategy, **kwargs)  # type: ignore[arg-type]
        check_range("miner.batch_size", batch_size, 1)
        self.batch_size = int(batch_size)
        self._embed_query: EmbedFn | None = None
        self._doc_encoder: Any = doc_encoder
        self.step_stats: dict[str, float] = {}
        self.counters["queries_retrieved_live"] = 0

    # -- setup ------------------------------------------------------------------------------
    def mine(self, data: Any, pairs: Any, embed_queries: EmbedFn,
             embed_docs: EmbedFn) -> dict[str, float]:
        """Build the fixed document index with the frozen document encoder, never with the
        ``embed_docs`` given (the starting weights; through the embedding cache, whose key
        holds the weights and settings, a copy of the starting encoder is served its
        embeddings), and a first pool for the starting query encoder."""
        from hnm.cache import frozen_embed_fn

        index_docs = frozen_embed_fn(self._doc_encoder, self.batch_size, progress=False)
        stats = super().mine(data, pairs, embed_queries, index_docs)
        self.pool = _widen(self.pool, self.search_k)
        self.pos_scores = np.asarray(self.pos_scores, dtype=np.float32).copy()
        return stats

    def models(self, encoder: Any, doc_encoder: Any) -> dict[str, Any]:
        """The training module's document encoder: the given one, frozen (the module's own
        ``doc_encoder`` is replaced, with a warning)."""
        doc = self._doc_encoder
        if doc is encoder:  # the very object being trained: freeze a copy, not the student
            doc = copy.deepcopy(encoder)
        if doc_encoder is not None and doc_encoder is not doc:
            log.warning("adore: the module's document encoder is replaced by miner.doc_encoder")
        dims = [m.get_sentence_embedding_dimension() for m in (encoder, doc)
                if hasattr(m, "get_sentence_embedding_dimension")]
        if len(dims) == 2 and dims[0] != dims[1]:
            raise ConfigError(f"miner.doc_encoder embeds in {dims[1]} dimensions, the encoder "
                              f"being trained in {dims[0]}; ADORE scores queries against its "
                              "documents, so both need the same embedding size")
        doc.eval()
        for p in doc.parameters():
            p.requires_grad_(False)
        self._doc_encoder = doc
        return {"doc_encoder": doc}

    def bind(self, view: TrainingView) -> None:
        """Embed queries with the query encoder being trained from now on."""
        self._embed_query = view.query_embedder(self.batch_size)

    def frozen_models(self) -> list[Any]:
        """The frozen document encoder (the one that built the index)."""
        return [] if self._doc_encoder is None else [self._doc_encoder]

    def effect(self) -> dict[str, float]:
        """The shared figures plus ``queries_retrieved_live``."""
        return {**super().effect(),
                "queries_retrieved_live": float(self.counters["queries_retrieved_live"])}

    # -- per-step retrieval -----------------------------------------------------------------
    def negatives(self, pair_idx: Sequence[int], epoch: int, step: int
                  ) -> tuple[list[list[str]], np.ndarray | None]:
        """Re-retrieve the batch's queries with the current query encoder, then hand out
        ``num_negatives`` ids per pair (and teacher scores when asked)."""
        if self._embed_query is not None and self.pool is not None and len(pair_idx):
            self.retrieve(np.unique(self.pair_qrow[np.asarray(pair_idx, dtype=np.int64)]),
                          self._embed_query)
        return super().negatives(pair_idx, epoch, step)

    def retrieve(self, rows: np.ndarray, embed_query: EmbedFn) -> dict[str, float]:
        """Search the fixed index for query ``rows`` and replace their pools."""
        assert self.index is not None and self.pool is not None
        q_emb = embed_query([self.data.queries[self.qids[r]] for r in rows])
        scores, idx = self.index.search(q_emb, self.search_k)
        # score of every known positive of these queries under the current query encoder
        local = {int(r): i for i, r in enumerate(rows)}
        slots = np.flatnonzero(np.isin(self.pos_q, rows))
        qi = np.array([local[int(r)] for r in self.pos_q[slots]], dtype=np.int64)
        docs = self.index.docs
        pos = np.einsum("ij,ij->i", q_emb[qi], docs[self.pos_d[slots]]).astype(np.float32)
        self.pos_scores[slots] = pos
        pool, removed = apply_filters(idx, scores, self.positive_mask(idx, rows),
                                      lowest_positive_score(qi, len(rows), pos),
                                      self.filter_settings)
        w = pool.idx.shape[1]
        self.pool.idx[rows] = -1
        self.pool.scores[rows] = np.nan
        self.pool.idx[rows, :w], self.pool.scores[rows, :w] = pool.idx, pool.scores
        self.pool.count[rows] = pool.count
        self.step_stats = {k: float(v) for k, v in removed.items()}
        self.step_stats["short_queries"] = float((pool.count < self.mined_quota()).sum())
        self.counters["queries_retrieved_live"] += len(rows)
        self.counters["candidates_dropped"] += dropped_by_score(removed)
        return self.step_stats


def _widen(pool: Pool | None, width: int) -> Pool | None:
    """A copy of ``pool`` with room for ``width`` candidates per query."""
    if pool is None:
        return None
    nq, w = pool.idx.shape
    idx = np.full((nq, max(width, w)), -1, dtype=np.int64)
    scores = np.full((nq, max(width, w)), np.nan, dtype=np.float32)
    idx[:, :w], scores[:, :w] = pool.idx, pool.scores
    return Pool(idx, scores, pool.count.copy())
