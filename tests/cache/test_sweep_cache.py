"""``hnm train -m experiment=smoke +miner=dense_static encoder.seed=0 seed=1,2``: the first job
encodes the corpus with the starting model once (the zero-shot evaluation's embeddings feed
dense_static), the second job serves the whole corpus from the disk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_second_sweep_job_is_served_from_the_cache(tmp_path: Path) -> None:
    from hnm.data.stdlib_code import load_stdlib_code

    data_cache = os.environ.get("HNM_CACHE_DIR") or str(Path.home() / ".cache" / "hnm")
    data = load_stdlib_code(cache_dir=data_cache)
    corpus = len(data.corpus)
    distinct = len({data.doc_text(d) for d in data.corpus})  # the texts actually encoded
    env = {**os.environ, "HNM_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "-m", "hnm.cli", "train", "-m", "experiment=smoke", "+miner=dense_static",
         "encoder.seed=0", "seed=1,2", "logger=none", f"data.source.cache_dir={data_cache}",
         f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    first, second = (json.loads((sweep / str(i) / "metrics.json").read_text()) for i in (0, 1))
    # job 0: the corpus encoded once (zero-shot), served to dense_static from this run
    assert first["cache/cached_texts"] >= corpus
    # (at most the distinct documents, 200 evaluation queries and 256 training queries)
    assert distinct <= first["cache/encoded_texts"] <= distinct + 200 + 256
    # job 1, same starting weights (encoder.seed=0): the whole corpus from the disk cache
    assert second["cache/cached_texts"] >= corpus
    assert second["cache/encoded_texts"] < corpus
    assert (tmp_path / "cache" / "embeddings").is_dir()
