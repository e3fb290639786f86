"""Re-rank each query's dense top-K with a cross-encoder (AR2's ranker, or any CrossEncoder)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hnm.data.dataset import RetrievalData
from hnm.encoders.clip import clip_for
from hnm.errors import ConfigError


def load_ranker(path: str | Path, device: str | None = None) -> Any:
    """A sentence-transformers ``CrossEncoder`` from ``path`` (e.g. a run's ``ranker/``)."""

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"eval.rerank_top_k needs a ranker: {folder} is not a folder (a run "
                          "of +miner=ar2 saves one as <run>/ranker; or set eval.ranker=PATH)")
    from hnm.encoders.model_files import load_cross_encoder

    return load_cross_encoder(str(folder), "eval.ranker", num_labels=1, device=device)


def rerank_run(run: dict[str, dict[str, float]], data: RetrievalData, ranker: Any, k: int,
               batch_size: int = 64) -> tuple[dict[str, dict[str, float]], float]:
    """Each query's ``k`` best documents re-scored by ``ranker`` and placed, in the ranker's
    order, above the rest of its list (which keeps its dense order); returns the new run and
    the seconds spent."""
    if k < 1:
        raise ConfigError(f"eval.rerank_top_k must be >= 1 to re-rank; got {k}")
    t0 = time.perf_counter()
    tops = {q: sorted(docs, key=lambda d: -docs[d])[:k] for q, docs in run.items()}
    pairs = [(data.queries[q], data.doc_text(d)) for q, ds in tops.items() for d in ds]
    scores = ranker.predict(clip_for(ranker, pairs), batch_size=batch_size, show_progress_bar=False,
                            convert_to_numpy=True) if pairs else []
    out: dict[str, dict[str, float]] = {}
    i = 0
    for q, docs in run.items():
        top = tops[q]
        ce = [float(s) for s in scores[i:i + len(top)]]
        i += len(top)
        rest = {d: s for d, s in docs.items() if d not in set(top)}
        floor = max(rest.values(), default=0.0)
        shift = floor - min(ce, default=0.0) + 1.0  # every re-ranked document above the rest
        out[q] = {**{d: s + shift for d, s in zip(top, ce)}, **rest}
    return out, time.perf_counter() - t0
