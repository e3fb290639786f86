"""Two real processes that miss the same entries at once leave a valid cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hnm.cache import EmbeddingCache, activate, frozen_embed_fn
from hnm.cache.store import open_shard, shard_files
from hnm.encoders import tiny_encoder
from hnm.encoders.embed import embed_fn
from tests.cache.fill_case import TEXTS

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(p: subprocess.Popen) -> None:
    """Skip whatever libraries print on import (transformers announces WANDB_MODE=offline on
    stdout) until the case's ``ready``; a case that dies first is reported, never waited on."""
    for line in p.stdout:
        if line.strip() == "ready":
            return
    p.kill()
    pytest.fail(f"fill_case exited before it was ready: {p.stderr.read()[-2000:]}")


@pytest.mark.slow
def test_two_processes_filling_the_same_entries(tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.cache.fill_case", str(tmp_path / "c"),
                               str(go), str(tmp_path / f"out{i}.npy")], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        for p in procs:
            _wait_ready(p)
        go.touch()
        outs = [p.communicate(timeout=600) for p in procs]
    finally:  # a failed or timed-out test leaves no case waiting for GO
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]

    model = tiny_encoder(seed=0)
    fresh = np.concatenate([embed_fn(model, 16, progress=False)(TEXTS[i:i + 50])
                            for i in range(0, len(TEXTS), 50)])
    for i in range(2):
        assert np.array_equal(np.load(tmp_path / f"out{i}.npy"), fresh)
    shards = shard_files(tmp_path / "c")
    assert shards and all(open_shard(s) is not None for s in shards)
    assert not list((tmp_path / "c").rglob(".tmp-*"))
    cache = EmbeddingCache(tmp_path / "c")
    with activate(cache):
        again = frozen_embed_fn(model, 16, progress=False)(TEXTS)
    assert (cache.encoded_texts, cache.cached_texts) == (0, len(TEXTS))
    np.testing.assert_array_equal(again, fresh)
