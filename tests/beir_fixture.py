"""Writes a small valid BEIR folder for tests."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_data


def write_beir(folder: Path, n_per_topic: int = 8) -> Path:
    data = make_data(n_per_topic)
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for did, doc in data.corpus.items():
            f.write(json.dumps({"_id": did, **doc}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in data.queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, qrels in data.qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for qid, docs in qrels.items():
                for did, rel in docs.items():
                    f.write(f"{qid}\t{did}\t{rel}\n")
    return folder
