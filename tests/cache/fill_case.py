"""One process filling the embedding cache: ``python -m tests.cache.fill_case DIR GO OUT``.

Prints ``ready`` once the model is loaded, waits until the file GO exists (so two of them miss
at the same moment), embeds the texts through the cache in small flushes and saves the result
to OUT (.npy)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from hnm.cache import EmbeddingCache, activate, frozen_embed_fn
from hnm.encoders import tiny_encoder

TEXTS = [f"def g{i}(y): return sorted(y)[{i}]  # topic {i % 7}" for i in range(300)]


def main(root: str, go: str, out: str) -> None:
    model = tiny_encoder(seed=0)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    cache = EmbeddingCache(root, flush_rows=50)  # several shards each, written while the other
    with activate(cache):                        # process writes the same entries
        f = frozen_embed_fn(model, 16, progress=False)
        emb = np.concatenate([f(TEXTS[i:i + 50]) for i in range(0, len(TEXTS), 50)])
    np.save(out, emb)
    print(f"encoded={cache.encoded_texts} cached={cache.cached_texts}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
