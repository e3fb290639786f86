"""How many texts this process has run through a model without gradient, for the compute a
strategy used: counted where they are asked for, whether they were encoded or served from the
embedding cache, so that the order of a sweep's jobs (which fills the cache) does not change a
strategy's cost.

Two entry points count: :func:`hnm.cache.embed.frozen` counts every text it is asked for and
marks the call, so that the encoder pass it makes for the texts not in the cache is not counted
twice; :func:`hnm.encoders.embed.embed_fn` counts the texts of every other call. Cross-encoder
scoring (guides, teachers) counts its pairs with :func:`add`. ``hnm train`` reports the
difference between the counter at its start and at its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_total = [0]
_local = threading.local()
_lock = threading.Lock()


def add(n: int) -> None:
    """Count ``n`` texts, unless a counted call (:func:`asked`) already counted them."""
    if getattr(_local, "depth", 0) == 0:
        with _lock:
            _total[0] += int(n)


@contextmanager
def asked(n: int) -> Iterator[None]:
    """Count ``n`` texts asked for; passes made inside the block are part of them."""
    add(n)
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1


def nograd_texts() -> int:
    """Texts counted in this process so far."""
    return _total[0]
