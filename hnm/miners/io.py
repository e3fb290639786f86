"""Read and write negatives files (``hnm mine`` output, ``+miner=from_file`` input).

Format: one record per query, as JSON Lines (``.jsonl``, any other suffix) or Parquet
(``.parquet``, needs pyarrow)::

    {"qid": "q1", "pos_ids": ["d7"], "pos_scores": [0.81],
     "neg_ids": ["d3", "d9"], "neg_scores": [0.77, 0.74]}

``qid`` and ``neg_ids`` are required; ``neg_ids`` are in rank order (best first). Scores may be
omitted or ``null``. The miner's settings, dataset, encoder and time go to the sidecar
``<file>.meta.json`` so that every line of the file is a record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hnm.errors import DataError
from hnm.runinfo import atomic_path, claim, write_text

Record = dict[str, Any]


def meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def write_negatives(path: Path, records: Iterable[Mapping[str, Any]],
                    meta: Mapping[str, Any] | None = None) -> int:
    """Write records (and ``meta`` to the sidecar); never over an existing file.

    Returns:
        The number of records written.
    """
    path = Path(path)
    claim(path, "a negatives file")
    if meta is not None:
        claim(meta_path(path), "a negatives metadata file")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [dict(r) for r in records]
    with atomic_path(path) as tmp:
        if is_parquet(path):
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), str(tmp))
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if meta is not None:
        write_text(meta_path(path), json.dumps(dict(meta), indent=2, sort_keys=True,
                                               default=str))
    return len(rows)


def read_negatives(path: Path) -> Iterator[tuple[str, Record]]:
    """Yield ``(where, record)`` with ``where`` = "FILE, line N" (or "row N" for Parquet).

    Raises:
        DataError: the file is missing, a line is not JSON, or a record lacks ``qid`` /
            ``neg_ids`` or has ill-typed fields; the message names the file and line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"negatives file {path} does not exist (write one with `hnm mine`, or "
                        "pass miner.path=PATH to a JSONL/Parquet file)")
    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(str(path)).to_pylist()
        except Exception as err:  # noqa: BLE001 - any pyarrow failure is the file's fault
            raise DataError(f"{path}: not a readable Parquet file ({err})") from err
        for n, row in enumerate(rows, start=1):
            where = f"{path}, row {n}"
            yield where, check_record(row, where)
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            where = f"{path}, line {n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                                f"column {err.start + 1}); expected JSON Lines, or a "
                                ".parquet file") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); "
                                "expected one object per line such as "
                                '{"qid": "q1", "neg_ids": ["d3", "d9"]}') from None
            yield where, check_record(row, where)


def check_record(row: Any, where: str) -> Record:
    """Validate one record and normalise ids to strings and missing scores to NaN."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if row.get("qid") is None or "neg_ids" not in row:
        raise DataError(f"{where}: a record needs 'qid' and 'neg_ids' (found keys: "
                        f"{', '.join(sorted(map(str, row))) or 'none'})")
    out: Record = {"qid": str(row["qid"])}
    for ids, scores in (("neg_ids", "neg_scores"), ("pos_ids", "pos_scores")):
        values = row.get(ids) or []
        if not isinstance(values, list) or not all(isinstance(v, (str, int)) for v in values):
            raise DataError(f"{where}: '{ids}' must be a list of document ids")
        out[ids] = [str(v) for v in values]
        given = row.get(scores)
        if given is None:
            out[scores] = [math.nan] * len(values)
            continue
        if not isinstance(given, list) or len(given) != len(values) or not all(
                s is None or (isinstance(s, (int, float)) and not isinstance(s, bool))
                for s in given):
            raise DataError(f"{where}: '{scores}' must be a list of numbers (or null) as long "
                            f"as '{ids}' ({len(values)})")
        out[scores] = [math.nan if s is None else float(s) for s in given]
    return out
