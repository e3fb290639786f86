"""The run's embedding cache: frozen-weight passes served from disk or from this run's memory.

:class:`EmbeddingCache` sits in front of an :data:`~hnm.types.EmbedFn` of a model whose
weights do not change during the call (the zero-shot evaluation, static miners, guides,
teachers, the first clustering): each text is looked up by (model key, text key) (see
:mod:`hnm.cache.fingerprint`), only the texts not found are encoded, and they are added to
this run's memory layer at once (so a later consumer in the same run reuses them: in-run
reuse) and to the disk cache when the run closes (or when enough rows are pending).

Only passes with frozen weights go through it: their call sites use :func:`frozen_embed_fn`
instead of :func:`hnm.encoders.embed.embed_fn`. Passes with the weights being trained
(refreshes after the first optimizer step, ANCE/ADORE query encodes, the final evaluation) do
not: their entries would never be read again (the weights are those of one step of one run),
and they would evict useful ones. Even if a trained model did reach the cache, its key is the
fingerprint of its current weights (recomputed whenever a parameter's version counter moved),
so it could never be served another model's embeddings.

The active cache is process-wide run infrastructure (like logging), set by ``hnm train``,
``hnm eval`` and ``hnm mine`` with :func:`activate` for the passes outside training steps (the
zero-shot and final evaluations, the first mining); inside a step a part gets its frozen
embedder from its :class:`~hnm.types.TrainingView`, which holds the run's cache explicitly.
Without a cache :func:`frozen_embed_fn` is exactly ``embed_fn``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from hnm import counting
from hnm.cache.fingerprint import FORMAT, model_key, text_keys
from hnm.cache.store import KeyedEntries, evict
from hnm.errors import check_range
from hnm.types import EmbedFn

log = logging.getLogger(__name__)

_ACTIVE: list[EmbeddingCache] = []


class EmbeddingCache:
    """Content-addressed embeddings of frozen-weight passes, on disk and in this run's memory.

    Args:
        dir: the cache folder (``cache.dir``, by default ``$HNM_CACHE_DIR/embeddings``).
        embeddings: use the disk cache (``cache.embeddings``); false: nothing is read or
            written on disk.
        in_run: keep this run's frozen-weight embeddings in memory for its other consumers
            (``cache.in_run``); with ``embeddings`` false as well, every frozen pass encodes.
        max_gb: size bound of the disk cache; least-recently-used shards are evicted beyond it.
        flush_rows: pending rows that trigger a write before the run closes.

    Counters (``metrics()``): ``cache/encoded_texts`` (texts embedded with frozen weights),
    ``cache/cached_texts`` (texts served from the disk cache or from this run's memory).
    """

    def __init__(self, dir: str | Path | None = None, embeddings: bool = True,
                 in_run: bool = True, max_gb: float = 20.0, flush_rows: int = 200_000):
        check_range("cache.max_gb", max_gb, 0.0)
        self.embeddings = bool(embeddings) and dir is not None
        self.in_run = bool(in_run)
        self.root = Path(str(dir)).expanduser() if dir is not None else None
        self.max_bytes = int(float(max_gb) * 1e9)
        self.flush_rows = int(flush_rows)
        self.encoded_texts = 0
        self.cached_texts = 0
        self._entries: dict[str, KeyedEntries] = {}
        self._lock = threading.RLock()

    @property
    def enabled(self) -> bool:
        return self.embeddings or self.in_run

    def _entry(self, key: str, parts: dict[str, Any], model: Any) -> KeyedEntries:
        entry = self._entries.get(key)
        if entry is None:
            folder = self.root / FORMAT / key if self.embeddings and self.root else None
            entry = KeyedEntries(folder, {"label": _label(model), **parts})
            self._entries[key] = entry
        return entry

    def embed(self, model: Any, texts: Sequence[str], inner: EmbedFn,
              settings: dict[str, Any] | None = None) -> np.ndarray:
        """``inner(texts)``, with every text already stored for this model key served from the
        cache and only the others encoded (each distinct text once)."""
        texts = list(texts)
        if not texts:
            return inner(texts)
        with self._lock:
            if not self.enabled:
                out = inner(texts)
                self.encoded_texts += len(texts)
                return out
            key, parts = model_key(model, **(settings or {}))
            if key is None:  # weights that cannot be fingerprinted: never cached
                out = inner(texts)
                self.encoded_texts += len(texts)
                return out
            entry = self._entry(key, parts, model)
            keys = text_keys(texts)
            src, row = entry.lookup(keys)
            if (src < 0).any() and entry.rescan():  # written by another process meanwhile
                src, row = entry.lookup(keys)
            miss = np.flatnonzero(src < 0)
            encoded = 0
            if len(miss):
                _, first = np.unique(keys[miss], axis=0, return_index=True)
                todo = miss[np.sort(first)]
                emb = np.ascontiguousarray(inner([texts[i] for i in todo]), dtype=np.float32)
                entry.add(keys[todo], emb)
                encoded = len(todo)
                if encoded == len(texts):  # nothing was stored: the fresh encode itself
                    out = emb
                else:
                    src, row = entry.lookup(keys)
                    out = entry.gather(src, row)
                if entry.pending_rows >= self.flush_rows:
                    self._flush()
            else:
                out = entry.gather(src, row)
            self.encoded_texts += encoded
            self.cached_texts += len(texts) - encoded
            return out

    def _flush(self) -> None:
        written = sum(e.flush() for e in self._entries.values())
        if written and self.root is not None:
            removed, freed = evict(self.root, self.max_bytes)
            if removed:
                log.info("embedding cache: evicted %d shard(s), %.1f MB (cache.max_gb=%.3g)",
                         removed, freed / 1e6, self.max_bytes / 1e9)

    def close(self) -> None:
        """Write what is pending, evict beyond ``max_gb``, drop this run's memory layer."""
        with self._lock:
            self._flush()
            self._entries.clear()

    def metrics(self) -> dict[str, float]:
        return {"cache/encoded_texts": float(self.encoded_texts),
                "cache/cached_texts": float(self.cached_texts)}


def _label(model: Any) -> str:
    """A readable name for ``hnm cache info`` (not part of the key)."""
    card = getattr(model, "model_card_data", None)
    name = getattr(card, "base_model", None) if card is not None else None
    if not name:
        try:
            name = model[0].auto_model.config._name_or_path
        except (TypeError, AttributeError, IndexError, KeyError):
            name = None
    return f"{type(model).__name__}({Path(str(name)).name or name})" if name else type(model).__name__


def active() -> EmbeddingCache | None:
    """The cache of the command running now, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def activate(cache: EmbeddingCache) -> Iterator[EmbeddingCache]:
    """Make ``cache`` the active one inside the block; closed (written) on the way out."""
    _ACTIVE.append(cache)
    try:
        yield cache
    finally:
        _ACTIVE.remove(cache)
        cache.close()


def from_config(node: Any, cache_dir: str | None = None) -> EmbeddingCache:
    """The cache of a ``cache`` config node (``conf/cache/default.yaml``); defaults when None."""
    node = dict(node or {})
    folder = node.get("dir") or (str(Path(cache_dir) / "embeddings") if cache_dir else None)
    return EmbeddingCache(dir=folder, embeddings=bool(node.get("embeddings", True)),
                          in_run=bool(node.get("in_run", True)),
                          max_gb=float(node.get("max_gb", 20.0)))


class _Active:
    """The cache of the command running now (:func:`active`), looked up at every call."""


ACTIVE: Any = _Active()


def frozen(model: Any, inner: EmbedFn, cache: EmbeddingCache | None = ACTIVE,
           dynamic: Callable[[], dict[str, Any]] | None = None, **settings: Any) -> EmbedFn:
    """``inner`` (an embed function of ``model``, whose weights do not change during a call)
    served through ``cache`` (by default the active one, looked up at every call; None: no
    cache); ``settings`` are everything besides the model that shapes ``inner``'s output (they
    become part of the key), ``dynamic()`` the settings read at each call (the backend
    ``auto`` resolves to on the model's current device). Texts asked for are counted either
    way (:mod:`hnm.counting`)."""

    def f(texts: Sequence[str]) -> np.ndarray:
        with counting.asked(len(texts)):
            store = active() if isinstance(cache, _Active) else cache
            if store is None:
                return inner(texts)
            return store.embed(model, texts, inner,
                               {**settings, **(dynamic() if dynamic else {})})

    return f


def frozen_embed_fn(model: Any, batch_size: int = 64, desc: str | None = None,
                    progress: bool = True, cache: EmbeddingCache | None = ACTIVE,
                    backend: str | None = None, normalize: bool = True) -> EmbedFn:
    """:func:`hnm.encoders.embed.embed_fn` for a pass with frozen weights, through ``cache``
    (by default the active one; a part inside a training step is handed the run's cache by its
    :class:`~hnm.types.TrainingView`). The key holds the backend that runs
    (``encoder.inference`` resolved: ``torch``, ``bf16``, ``int8``, …), so float32, bf16 and
    quantised embeddings of the same weights are never served for one another."""
    from hnm.encoders.embed import embed_fn
    from hnm.encoders.inference import effective_backend

    inner = embed_fn(model, batch_size, desc=desc, progress=progress, backend=backend,
                     normalize=normalize)
    return frozen(model, inner, cache, lambda: {"inference": effective_backend(model, backend)},
                  fn="embed_fn", normalize=normalize)
