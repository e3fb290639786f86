"""Files the planted runs need: a negatives file for ``+miner=from_file``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.effects.harness import planted_data, topic_of


def negatives_file(folder: Path, k: int = 4) -> Path:
    """Each training query's negatives: the first ``k`` documents of the next topic."""
    data = planted_data()
    path = folder / "negatives.jsonl"
    docs = sorted(data.corpus)
    with path.open("w") as f:
        for qid, rel in sorted(data.qrels["train"].items()):
            t = (topic_of(qid) + 1) % 8
            negs = [d for d in docs if topic_of(d) == t][:k]
            f.write(json.dumps({"qid": qid, "pos_ids": sorted(rel), "neg_ids": negs}) + "\n")
    return path
