"""Read an offline W&B run back: the records of a ``run-*.wandb`` file as the SDK's protobuf
``Record`` messages, to check what reached W&B without trusting the code that sent it.

The file is a LevelDB-style log (what the SDK writes): a 7-byte header (``:W&B``, a 2-byte
magic, a version byte), then 32 KiB blocks of chunks, each with a 7-byte header (CRC32C,
little-endian length, type: 1 full, 2 first, 3 middle, 4 last); a block's tail shorter than a
header is padding. Checksums are not verified.
"""

from __future__ import annotations

import glob
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def chunks(data: bytes) -> Iterator[bytes]:
    """The records' payloads, chunks reassembled."""
    assert data[:4] == b":W&B", "not a W&B transaction log"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        length, kind = struct.unpack("<HB", data[pos + 4:pos + 7])
        if length == 0 and kind == 0:  # zero padding to the block's end
            pos += left
            continue
        payload = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            yield payload
        elif kind == 2:
            pending = payload
        elif kind == 3:
            pending += payload
        elif kind == 4:
            yield pending + payload
            pending = b""


def records(path: str | Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for payload in chunks(Path(path).read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(payload)
        out.append(rec)
    return out


def run_file(run_folder: str | Path) -> Path:
    found = sorted(glob.glob(str(Path(run_folder) / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert found, f"no offline W&B run under {run_folder}"
    return Path(found[-1])


def summary(path: str | Path) -> dict[str, Any]:
    """What a run's records hold: ``run`` (name, group, tags, job type), ``config`` (key ->
    value), ``history`` (one dict per logged step) and ``files`` (names uploaded)."""
    out: dict[str, Any] = {"run": {}, "config": {}, "history": [], "files": []}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out["run"] = {"name": r.display_name, "group": r.run_group, "tags": list(r.tags),
                          "job_type": r.job_type, "project": r.project}
            for item in r.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in rec.history.item})
        elif kind == "files":
            out["files"] += [f.path for f in rec.files.files]
    return out
