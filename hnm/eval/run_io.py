"""Read and write TREC run files and per-query metrics (``.gz`` suffix compresses).

A TREC run line is ``qid Q0 docid rank score tag``; ranks start at 1 and follow trec_eval's
order (score descending, equal scores by document id descending). Per-query metrics are JSON
Lines (``{"qid": ..., "ndcg@10": ...}`` per line) or, for a ``.json`` path, one object
``{qid: {metric: value}}``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from hnm.errors import DataError
from hnm.eval.metrics import trec_order
from hnm.runinfo import atomic_path


def _open(path: str | Path, mode: str) -> IO[str]:
    path = Path(path)
    if "w" in mode:
        path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return open(path, mode, encoding="utf-8")


def _stem_suffix(path: str | Path) -> str:
    p = Path(path)
    return Path(p.stem).suffix if p.suffix == ".gz" else p.suffix


def write_trec_run(run: Mapping[str, Mapping[str, float]], path: str | Path,
                   tag: str = "hnm") -> Path:
    """Write ``run`` (query id -> doc id -> score) as a TREC run file; queries sorted by id."""
    for name, value in (("tag", tag), *((f"id {q!r}", q) for q in run)):
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"TREC run {name} must be non-empty without whitespace: {value!r}")
    with atomic_path(Path(path)) as tmp, _open(tmp, "w") as f:
        for qid in sorted(run):
            for rank, (doc, score) in enumerate(trec_order(run[qid]), start=1):
                f.write(f"{qid} Q0 {doc} {rank} {score!r} {tag}\n")
    return Path(path)


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file into query id -> doc id -> score."""
    run: dict[str, dict[str, float]] = {}
    with _open(path, "r") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 6:
                    raise ValueError(f"expected 6 fields, found {len(parts)}")
                qid, _, doc, _, score, _ = parts
                run.setdefault(qid, {})[doc] = float(score)
            except ValueError as err:
                raise DataError(f"{path}:{n}: not a TREC run line 'qid Q0 docid rank score "
                                f"tag' ({err}): {line.strip()[:120]!r}") from err
    return run


def write_per_query(per_query: Mapping[str, Mapping[str, float]], path: str | Path) -> Path:
    """Write per-query metrics: JSON Lines, or one JSON object when the path ends in ``.json``."""
    with atomic_path(Path(path)) as tmp, _open(tmp, "w") as f:
        if _stem_suffix(path) == ".json":
            json.dump({q: dict(per_query[q]) for q in sorted(per_query)}, f, indent=1)
            f.write("\n")
        else:
            for q in sorted(per_query):
                f.write(json.dumps({"qid": q, **per_query[q]}) + "\n")
    return Path(path)


def read_per_query(path: str | Path) -> dict[str, dict[str, float]]:
    """Read what :func:`write_per_query` wrote."""
    with _open(path, "r") as f:
        if _stem_suffix(path) == ".json":
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: not valid JSON ({err})") from err
            return {str(q): dict(v) for q, v in data.items()}
        out: dict[str, dict[str, float]] = {}
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[str(row.pop("qid"))] = row
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as err:
                raise DataError(f"{path}:{n}: expected a JSON object with a 'qid' key "
                                f"({err!r})") from err
        return out
