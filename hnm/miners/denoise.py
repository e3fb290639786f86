"""Denoised hard negatives: a guide model rescores mined candidates and drops likely false
negatives; its scores are kept as teacher scores."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hnm import counting
from hnm.encoders.clip import clip_for
from hnm.errors import ConfigError, check_range
from hnm.miners.base import Candidates
from hnm.miners.dense_static import DenseStaticMiner
from hnm.miners.filters import FilterSettings, Pool, apply_filters
from hnm.types import EmbedFn


class DenoiseMiner(DenseStaticMiner):
    """Dense hard negatives cleaned by a guide model (RocketQA-style denoising).

    Candidates are mined as in :class:`~hnm.miners.dense_static.DenseStaticMiner` (the
    starting model, or ``encoder``) and pass the shared filters (positives, rank window,
    margins). A *guide* then scores every surviving candidate and every known positive, and a
    candidate is dropped as a likely false negative when its guide score is above
    ``max_guide_score``, or above the query's positive guide score minus ``guide_margin``
    (the lowest positive score when a query has several), but never more than
    ``1 - min_keep_share`` of a query's candidates: beyond that share only the candidates the
    guide scores highest are dropped. The pool keeps the guide's scores,
    so with ``teacher_scores=true`` (the default) the negatives come with teacher scores
    ``(B, 1+k)`` (the positive's first; NaN for padded random documents) for distillation
    losses such as MarginMSE or KL; the telemetry is in guide scores too. A query left with
    fewer than ``num_negatives`` survivors is padded with random documents, never one of the
    candidates the guide dropped for it.

    The guide is, in order of precedence: ``cross_encoder`` (a sentence-transformers
    CrossEncoder folder, which reads query and document together, as in RocketQA); ``guide``
    (another bi-encoder, a SentenceTransformer); or, by default, the frozen starting model
    (the embedding functions passed to :meth:`mine`). When the default guide is also the
    retriever, its scores are the retrieval scores and no text is encoded twice. A guide
    model the miner holds is listed by :meth:`frozen_models` (kept in eval mode during
    training). The candidates the guide drops count in ``candidates_dropped`` of
    :meth:`effect`. With both guide filters off and ``teacher_scores=false`` the guide would
    do nothing (the miner would be ``dense_static``), which is refused.

    Implements the denoised hard negatives of RocketQA (Qu et al., NAACL 2021, "RocketQA: An
    Optimized Training Approach to Dense Passage Retrieval for Open-Domain Question
    Answering"): retrieved candidates that a cross-encoder scores as relevant with high
    confidence are removed, because unlabeled positives among top-ranked documents are common
    and hurt training; see also Cai et al. (CIKM 2022, "Hard Negatives or False Negatives:
    Correcting Pooling Bias in Training Neural Ranking Models"), who show that a stronger
    retriever's top ranks hold more false negatives. Departures: RocketQA thresholds the
    cross-encoder's probability and also uses it to add pseudo-labelled positives; here the
    threshold is in the guide's own score units (a cross-encoder's raw output, or cosine for a
    bi-encoder), a margin to the positive is offered, no positives are added, and the guide
    keeps at least ``min_keep_share`` (0.5) of each query's candidates, where RocketQA drops
    every candidate above its threshold: with the starting model as its own guide (the
    default, no cross-encoder being installable offline) a margin of 0 drops every candidate
    ranked above the positive, most of the pool for a query the model gets wrong.

    Args:
        max_guide_score: drop candidates whose guide score exceeds this (``None``: off).
        guide_margin: drop candidates whose guide score exceeds the positive's guide score
            minus this (``0`` drops those the guide ranks above the positive; ``None``: off).
        guide: a SentenceTransformer bi-encoder guide (e.g. a nested config with
            ``_target_``) or an embedding function ``texts -> (n, d)`` normalised array;
            ``None`` = the starting model.
        cross_encoder: path or name of a sentence-transformers CrossEncoder guide.
        guide_batch_size: batch size of the guide's encoding/prediction.
        teacher_scores: return the guide's scores as teacher scores.
        min_keep_share: the share of each query's candidates the guide keeps at least, in
            [0, 1] (0: no floor); restored candidates count in ``restored_min_keep``.
        **kwargs: the knobs of :class:`DenseStaticMiner` (``encoder``, ``num_negatives``, …).

    Recommended with a guide stronger than the retriever (a cross-encoder or a larger
    bi-encoder), ``guide_margin`` 0 to a small positive value, a wide candidate window
    (``range_max`` 50–200) so that enough candidates survive, and a distillation loss
    (``loss=margin_mse``) or InfoNCE.
    """

    not_state = ("guide", "_ce")  # models it holds, not its state (hnm.state)

    def __init__(self, max_guide_score: float | None = None, guide_margin: float | None = 0.0,
                 guide: Any = None, cross_encoder: str | None = None,
                 guide_batch_size: int = 64, teacher_scores: bool = True,
                 min_keep_share: float = 0.5, **kwargs: Any) -> None:
        super().__init__(teacher_scores=teacher_scores, **kwargs)
        if guide is not None and cross_encoder is not None:
            raise ConfigError("miner.guide and miner.cross_encoder are both set; give one guide")
        if guide_margin is not None:
            check_range("miner.guide_margin", guide_margin, 0.0)
        check_range("miner.min_keep_share", min_keep_share, 0.0, 1.0)
        if max_guide_score is None and guide_margin is None and not teacher_scores:
            raise ConfigError("miner.max_guide_score and miner.guide_margin are both null and "
                              "miner.teacher_scores is false: the guide would drop nothing and "
                              "score nothing, so denoise would train as dense_static. Set "
                              "miner.guide_margin (e.g. 0) or miner.max_guide_score")
        self.max_guide_score = None if max_guide_score is None else float(max_guide_score)
        self.guide_margin = None if guide_margin is None else float(guide_margin)
        self.guide = guide
        self.cross_encoder = cross_encoder
        self.guide_batch_size = int(guide_batch_size)
        self.min_keep_share = float(min_keep_share)
        self._ce: Any = None
        self._start: tuple[EmbedFn, EmbedFn] | None = None
        self._seen: dict[str, np.ndarray] = {}
        self._flagged: list[set[int]] = []  # per query row: the guide's likely false negatives

    def candidates(self, embed_queries: EmbedFn, embed_docs: EmbedFn, k: int) -> Candidates:
        """Dense candidates; remembers the starting model (the default guide) and, when it
        is also the retriever, the embeddings it produced."""
        self._start = (embed_queries, embed_docs)
        self._seen = {}
        if self.encoder is not None or self.guide is not None or self.cross_encoder:
            return super().candidates(embed_queries, embed_docs, k)
        return super().candidates(self._record("q", embed_queries),
                                  self._record("d", embed_docs), k)

    def _record(self, key: str, embed: EmbedFn) -> EmbedFn:
        def f(texts: Sequence[str]) -> np.ndarray:
            out = embed(texts)
            self._seen[key] = out
            return out

        return f

    # -- filtering --------------------------------------------------------------------------
    def filter(self, cands: Candidates) -> tuple[Pool, dict[str, int]]:
        """The shared filters, then the guide's; pool and positive scores become guide
        scores (``cands.pos_scores`` is replaced, the retriever's are kept in
        ``retrieval_pos_scores``)."""
        settings = self.filter_settings
        pool, removed = apply_filters(cands.idx, cands.scores, self.positive_mask(cands.idx),
                                      self.query_pos_score(cands.pos_scores),
                                      dataclasses.replace(settings, limit=None))
        guide_pool, guide_pos = self.guide_scores(pool)
        self.retrieval_pos_scores = cands.pos_scores
        cands.pos_scores = guide_pos
        keep = pool.idx >= 0
        candidates = keep.copy()
        qpos = self.query_pos_score(guide_pos)[:, None]
        with np.errstate(invalid="ignore"):
            if self.max_guide_score is not None:
                drop = keep & (guide_pool > self.max_guide_score)
                removed["removed_guide_score"] = int(drop.sum())
                keep &= ~drop
            if self.guide_margin is not None:
                drop = keep & (guide_pool > qpos - self.guide_margin)
                removed["removed_guide_margin"] = int(drop.sum())
                keep &= ~drop
        removed["restored_min_keep"] = self._keep_share(candidates, keep, guide_pool)
        flagged = candidates & ~keep
        self._flagged = [set(pool.idx[q, flagged[q]].tolist()) for q in range(len(keep))]
        out, _ = apply_filters(np.where(keep, pool.idx, -1), guide_pool, np.zeros_like(keep),
                               np.full(len(keep), np.nan), FilterSettings(limit=settings.limit))
        removed["kept"] = int(out.count.sum())
        self._seen = {}
        return out, removed

    def _keep_share(self, candidates: np.ndarray, keep: np.ndarray,
                    guide_pool: np.ndarray) -> int:
        """Give back, in place, the flagged candidates with the lowest guide scores of every
        query that would keep fewer than ``ceil(min_keep_share * candidates)``; how many."""
        need = np.ceil(self.min_keep_share * candidates.sum(1) - 1e-9).astype(int) - keep.sum(1)
        restored = 0
        for q in np.nonzero(need > 0)[0]:
            flagged = np.nonzero(candidates[q] & ~keep[q])[0]
            back = flagged[np.argsort(guide_pool[q, flagged], kind="stable")[:need[q]]]
            keep[q, back] = True
            restored += len(back)
        return restored

    def never_pad(self, q: int) -> set[int]:
        """The candidates the guide dropped for query row ``q``: padding never draws them back."""
        return self._flagged[q] if q < len(self._flagged) else set()

    def frozen_models(self) -> list[Any]:
        """The retriever's own encoder, a bi-encoder guide and a loaded cross-encoder."""
        out = super().frozen_models()
        if isinstance(self.guide, torch.nn.Module):
            out.append(self.guide)
        ce = self._ce if isinstance(self._ce, torch.nn.Module) else getattr(self._ce, "model",
                                                                            None)
        if isinstance(ce, torch.nn.Module):
            out.append(ce)
        return out

    def guide_scores(self, pool: Pool) -> tuple[np.ndarray, np.ndarray]:
        """Guide scores of the pool's candidates ((nq, P), NaN where empty) and of every known
        positive ((m,), aligned with ``pos_q``/``pos_d``)."""
        q_rows, cols = np.nonzero(pool.idx >= 0)
        d_rows = pool.idx[q_rows, cols]
        pair_q = np.concatenate([q_rows, self.pos_q]).astype(np.int64)
        pair_d = np.concatenate([d_rows, self.pos_d]).astype(np.int64)
        s = self._score_pairs(pair_q, pair_d)
        out = np.full(pool.idx.shape, np.nan, dtype=np.float32)
        out[q_rows, cols] = s[:len(q_rows)]
        return out, s[len(q_rows):]

    def _score_pairs(self, q: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Guide score of each (query row, corpus row) pair."""
        if len(q) == 0:
            return np.zeros(0, dtype=np.float32)
        if self.cross_encoder:
            ce = self._load_cross_encoder()
            texts = [(self.data.queries[self.qids[i]], self.data.doc_text(self.doc_ids[j]))
                     for i, j in zip(q, d)]
            counting.add(len(texts))
            out = ce.predict(clip_for(ce, texts), batch_size=self.guide_batch_size,
                             show_progress_bar=False,
                             convert_to_numpy=True)
            return np.asarray(out, dtype=np.float32).reshape(len(q))
        uq, qi = np.unique(q, return_inverse=True)
        ud, di = np.unique(d, return_inverse=True)
        if "q" in self._seen and "d" in self._seen:  # the guide is the retriever: reuse
            q_emb, d_emb = self._seen["q"][uq], self._seen["d"][ud]
        else:
            eq, ed = self._guide_embedders()
            q_emb = eq([self.data.queries[self.qids[i]] for i in uq])
            d_emb = ed([self.data.doc_text(self.doc_ids[j]) for j in ud])
        return np.einsum("ij,ij->i", q_emb[qi], d_emb[di]).astype(np.float32)

    def _guide_embedders(self) -> tuple[EmbedFn, EmbedFn]:
        if self.guide is not None:
            from hnm.cache import frozen_embed_fn

            f = frozen_embed_fn(self.guide, self.guide_batch_size, progress=False) \
                if hasattr(self.guide, "encode") else self.guide
            return f, f
        if self._start is None:
            raise RuntimeError("DenoiseMiner: mine() must run before scoring")
        return self._start

    def _load_cross_encoder(self) -> Any:
        if self._ce is None:
            from hnm.encoders.model_files import load_cross_encoder

            self._ce = load_cross_encoder(str(self.cross_encoder), "miner.cross_encoder")
        return self._ce
