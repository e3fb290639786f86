"""How many texts this process ran through a model, with and without gradient: the compute a
strategy used. Texts without gradient are counted where they are asked for, whether they were
encoded or served from the embedding cache, so that the order of a sweep's jobs (which fills the
cache) does not change a strategy's cost.

Where: :func:`hnm.cache.embed.frozen` counts every text it is asked for and marks the call, so
the encoder pass it makes for the texts not in the cache is not counted twice;
:func:`hnm.encoders.embed.embed_fn` counts the texts of every other no-grad pass; the training
step counts its queries and documents (with gradient, or without for a frozen document
encoder); the ranker of AR2 and cross-encoder guides and teachers count their (query,
document) pairs; the queue's key encoder its keys. ``hnm train`` reports the difference between
the counters at its start and at its end; a window inside one thread (an evaluation while a
background refresh runs) reads :func:`thread_texts`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_totals = {"grad": 0, "nograd": 0}
_local = threading.local()
_lock = threading.Lock()


def add(n: int, grad: bool = False) -> None:
    """Count ``n`` texts (or pairs), unless a counted call (:func:`asked`) already did."""
    if getattr(_local, "depth", 0):
        return
    key = "grad" if grad else "nograd"
    with _lock:
        _totals[key] += int(n)
    _local.nograd = getattr(_local, "nograd", 0) + (0 if grad else int(n))


@contextmanager
def asked(n: int) -> Iterator[None]:
    """Count ``n`` texts asked for without gradient; passes made inside the block are part of
    them."""
    add(n)
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def nograd_texts() -> int:
    """Texts run without gradient in this process so far."""
    return _totals["nograd"]


def grad_texts() -> int:
    """Texts run with gradient in this process so far."""
    return _totals["grad"]


def thread_texts() -> int:
    """Texts run without gradient by the calling thread so far."""
    return getattr(_local, "nograd", 0)
