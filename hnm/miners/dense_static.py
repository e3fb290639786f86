"""Static dense hard negatives: kNN from a fixed encoder, mined once before training."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from hnm.errors import check_range
from hnm.miners.base import Candidates, MinerBase
from hnm.types import EmbedFn


class DenseStaticMiner(MinerBase):
    """Hard negatives retrieved once by a fixed dense encoder.

    Every unique training query is embedded, the corpus is indexed (exact chunked search by
    default, ``index=ivf|hnsw`` for large corpora) and each query's top-ranked non-positive
    documents become its pool (see :class:`~hnm.miners.base.MinerBase` for the window, the
    margin filters and the per-epoch sampling). The negatives never change during training.

    These are the *static hard negatives* of STAR (Zhan et al., SIGIR 2021, "Optimizing Dense
    Retrieval Model Training with Hard Negatives"), and the warm-up negatives of DPR/ANCE-style
    pipelines. Static negatives go stale as the model moves away from the miner; STAR mixes
    in random negatives (``+miner=star``) and ANCE re-mines (``+miner=ance``). A miner's own
    ``encoder`` is listed by :meth:`frozen_models`, so it never trains and stays in eval mode.
    Departure from STAR: STAR mines with a trained retriever (its warm-up model); here the
    default is the starting model of this run.

    Args:
        encoder: the miner's own encoder (a SentenceTransformer, e.g. a nested
            ``miner.encoder`` config with ``_target_``); ``None`` mines with the starting
            model that is being trained.
        batch_size: texts per encoder batch when ``encoder`` is given.
        **kwargs: the shared knobs of :class:`~hnm.miners.base.MinerBase`.

    Recommended with InfoNCE over in-batch plus mined negatives, ``relative_margin`` around
    0.05 (NV-Retriever) to keep likely false negatives out, and ``sampling_strategy=random``
    over a window such as ranks 0–50 when training for several epochs.
    """

    not_state: ClassVar[tuple[str, ...]] = ("encoder",)  # models it holds, not its state (hnm.state)

    def __init__(self, encoder: Any = None, batch_size: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        check_range("miner.batch_size", batch_size, 1)
        self.batch_size = int(batch_size)

    def frozen_models(self) -> list[Any]:
        """The miner's own encoder, when it has one (used before training only)."""
        return [self.encoder] if isinstance(self.encoder, torch.nn.Module) else []

    def candidates(self, embed_queries: EmbedFn, embed_docs: EmbedFn, k: int) -> Candidates:
        if self.encoder is not None:
            from hnm.cache import frozen_embed_fn

            embed_queries = embed_docs = frozen_embed_fn(self.encoder, self.batch_size)
        return super().candidates(embed_queries, embed_docs, k)
