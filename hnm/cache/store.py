"""The embeddings of one model key: verified shard files on disk plus the rows encoded in this
process, looked up by 128-bit text keys.

A shard is one ``.npy`` file holding a structured array ``[('key', '<u8', (2,)), ('emb', '<f4',
(d,))]`` (no objects, read with ``allow_pickle=False``: it cannot carry code), memory-mapped on
use. Its file name is the first 32 hex digits of the SHA-256 of its bytes, so a file is checked
against its own name before it is trusted; a truncated or altered file fails the check, is
deleted and its texts are encoded again. Files are written to a temporary name in the same
folder and renamed into place (atomic on POSIX): readers never see half a file, and two
processes that fill the same entry at once each write a complete, valid shard (at worst the
same texts twice; eviction reclaims the space). Least-recently-used eviction works on whole
shards by modification time, which a process refreshes when it first reads a shard.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

META = "meta.json"
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 3600.0


def shard_dtype(dim: int) -> np.dtype:
    return np.dtype([("key", "<u8", (2,)), ("emb", "<f4", (dim,))])


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 23):
            h.update(chunk)
    return h.hexdigest()[:32]


def open_shard(path: Path) -> np.ndarray | None:
    """The shard's records (memory-mapped), or None (and the file removed) when its bytes do
    not match its name or it is not a shard."""
    try:
        st = path.stat()
        ok = file_digest(path) == path.stem
        arr = np.load(path, mmap_mode="r", allow_pickle=False) if ok else None
        ok = (arr is not None and arr.dtype.names == ("key", "emb") and arr.ndim == 1
              and arr.dtype["key"].shape == (2,) and len(arr.dtype["emb"].shape) == 1)
    except FileNotFoundError:
        return None  # evicted or cleared meanwhile
    except (OSError, ValueError) as err:
        log.warning("embedding cache: unreadable shard %s (%s); its texts will be re-encoded",
                    path, err)
        ok, arr = False, None
    if not ok:
        log.warning("embedding cache: %s failed its checksum or format check; removed, its "
                    "texts will be re-encoded", path)
        try:
            if path.stat().st_ino == st.st_ino:
                path.unlink()
        except (OSError, UnboundLocalError):
            pass
        return None
    return arr


def write_shard(folder: Path, keys: np.ndarray, emb: np.ndarray) -> Path:
    """Write one shard atomically; returns its path (an identical one may already exist)."""
    rec = np.empty(len(keys), dtype=shard_dtype(emb.shape[1]))
    rec["key"] = keys
    rec["emb"] = emb
    buf = io.BytesIO()
    np.save(buf, rec, allow_pickle=False)
    data = buf.getvalue()
    final = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.npy"
    if final.exists():
        os.utime(final)
        return final
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.npy"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    path = folder / META
    if path.exists():
        return
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.json"
    tmp.write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


class KeyedEntries:
    """All embeddings of one model key: verified shards of ``folder`` (None: memory only) and
    the rows added in this process (``pending`` until :meth:`flush` writes them)."""

    def __init__(self, folder: Path | None, meta: dict[str, Any] | None = None):
        self.folder = folder
        self.meta = meta or {}
        self.sources: list[np.ndarray] = []      # (n_i, d) float32 arrays (memmaps or memory)
        self.paths: list[Path | None] = []       # shard path of each source, None: pending
        self.index: dict[bytes, tuple[int, int]] = {}
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_rows = 0
        self._seen: set[str] = set()
        self._touched: set[int] = set()
        self._dir_stamp: int | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            write_meta(folder, self.meta)
            self.rescan()

    # ---- reading --------------------------------------------------------------------------
    def rescan(self) -> bool:
        """Open shards written since the last scan (by this or another process); True if any."""
        if self.folder is None:
            return False
        try:
            stamp = self.folder.stat().st_mtime_ns
        except FileNotFoundError:  # cleared meanwhile
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = None
        if stamp is not None and stamp == self._dir_stamp:
            return False
        self._dir_stamp = stamp
        found = False
        for path in sorted(self.folder.glob("*.npy")):
            if path.name.startswith(TMP_PREFIX) or path.stem in self._seen:
                continue
            self._seen.add(path.stem)
            arr = open_shard(path)
            if arr is None or len(arr) == 0:
                continue
            if self.sources and arr["emb"].shape[1] != self.sources[0].shape[1]:
                log.warning("embedding cache: %s has another dimension; ignored", path)
                continue
            self._add_source(arr["key"], arr["emb"], path)
            found = True
        return found

    def _add_source(self, keys: np.ndarray, emb: np.ndarray, path: Path | None) -> None:
        s = len(self.sources)
        self.sources.append(emb)
        self.paths.append(path)
        raw = np.ascontiguousarray(keys, dtype=np.uint64).tobytes()
        for r in range(len(keys)):
            self.index.setdefault(raw[16 * r:16 * r + 16], (s, r))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source, row)`` of each key, ``source = -1`` where it is not stored."""
        raw = np.ascontiguousarray(keys, dtype=np.uint64).tobytes()
        src = np.full(len(keys), -1, dtype=np.int64)
        row = np.zeros(len(keys), dtype=np.int64)
        get = self.index.get
        for i in range(len(keys)):
            hit = get(raw[16 * i:16 * i + 16])
            if hit is not None:
                src[i], row[i] = hit
        return src, row

    def gather(self, src: np.ndarray, row: np.ndarray) -> np.ndarray:
        """(n, d) float32 rows; every ``src`` must be a stored source."""
        dim = self.sources[int(src[0])].shape[1]
        out = np.empty((len(src), dim), dtype=np.float32)
        for s in np.unique(src):
            at = np.flatnonzero(src == s)
            out[at] = self.sources[int(s)][row[at]]
            path = self.paths[int(s)]
            if path is not None and int(s) not in self._touched:
                self._touched.add(int(s))
                try:
                    os.utime(path)  # least-recently-used order
                except OSError:
                    pass
        return out

    # ---- writing --------------------------------------------------------------------------
    def add(self, keys: np.ndarray, emb: np.ndarray) -> None:
        """Rows encoded in this process: served at once, written by :meth:`flush`."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        self._add_source(keys, emb, None)
        if self.folder is not None:
            self.pending.append((keys, emb))
            self.pending_rows += len(keys)

    def flush(self) -> int:
        """Write the pending rows as one shard; returns the rows written (0 on failure: a cache
        must never fail a run)."""
        if self.folder is None or not self.pending:
            return 0
        keys = np.concatenate([k for k, _ in self.pending])
        emb = np.concatenate([e for _, e in self.pending])
        self.pending, self.pending_rows = [], 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_meta(self.folder, self.meta)
            path = write_shard(self.folder, keys, emb)
            self._seen.add(path.stem)
        except OSError as err:
            log.warning("embedding cache: could not write to %s (%s)", self.folder, err)
            return 0
        return len(keys)


# ---- the whole cache folder: size, eviction, info, clear ----------------------------------
def shard_files(root: Path) -> list[Path]:
    return [p for p in root.glob("*/*/*.npy") if not p.name.startswith(TMP_PREFIX)]


def evict(root: Path, max_bytes: int) -> tuple[int, int]:
    """Delete least-recently-used shards until the cache holds at most ``max_bytes``; also
    stale temporary files. Returns ``(files removed, bytes freed)``."""
    now = time.time()
    for tmp in root.glob(f"*/*/{TMP_PREFIX}*"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass
    stats = []
    for p in shard_files(root):
        try:
            st = p.stat()
        except OSError:
            continue
        stats.append((st.st_mtime, st.st_size, p))
    total = sum(s for _, s, _ in stats)
    removed = freed = 0
    for _, size, path in sorted(stats, key=lambda t: t[0]):
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        removed += 1
        freed += size
    return removed, freed


def shard_header(path: Path) -> tuple[int, int]:
    """``(records, dimension)`` of a shard, from its header only."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
    return int(shape[0]), int(dtype["emb"].shape[0])


def info(root: Path) -> list[dict[str, Any]]:
    """One row per model key: its label, shards, texts, bytes and last use."""
    rows = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        shards = [p for p in folder.glob("*.npy") if not p.name.startswith(TMP_PREFIX)]
        try:
            meta = json.loads((folder / META).read_text())
        except (OSError, ValueError):
            meta = {}
        texts = size = dim = 0
        last = 0.0
        for p in shards:
            try:
                n, dim = shard_header(p)
                texts += n
                st = p.stat()
            except (OSError, ValueError):
                continue
            size += st.st_size
            last = max(last, st.st_mtime)
        rows.append({"key": folder.name, "format": folder.parent.name,
                     "model": meta.get("label", "?"), "dim": dim or None,
                     "shards": len(shards), "texts": texts, "bytes": size, "last_used": last})
    return rows


def clear(root: Path) -> tuple[int, int]:
    """Remove every shard and key folder under ``root``; returns ``(files, bytes)``."""
    import shutil

    files = freed = 0
    for folder in [p for p in root.glob("*/*") if p.is_dir()]:
        for p in folder.iterdir():
            try:
                freed += p.stat().st_size
                files += 1
            except OSError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
    return files, freed
