"""``hnm cache info`` / ``hnm cache clear``: show or empty the embedding cache.

The folder is ``$HNM_CACHE_DIR/embeddings`` (``~/.cache/hnm/embeddings`` without it), the
``cache.dir`` of ``hnm train``; ``--dir`` names another one. Only embeddings are touched: the
datasets cached beside them stay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from hnm.cache.fingerprint import FORMAT
from hnm.cache.store import clear, info


def default_dir() -> Path:
    base = os.environ.get("HNM_CACHE_DIR") or str(Path(os.environ.get("HOME", ".")) / ".cache/hnm")
    return Path(base).expanduser() / "embeddings"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


def show(root: Path) -> str:
    rows = info(root)
    total = sum(r["bytes"] for r in rows)
    lines = [f"embedding cache: {root}",
             f"{len(rows)} model key(s), {sum(r['shards'] for r in rows)} shard(s), "
             f"{sum(r['texts'] for r in rows)} text(s), {_size(total)}"]
    if rows:
        lines.append(f"  {'key':<12} {'model':<36} {'dim':>5} {'texts':>9} {'shards':>6} "
                     f"{'size':>10}  last used")
    for r in sorted(rows, key=lambda r: -r["last_used"]):
        when = (dt.datetime.fromtimestamp(r["last_used"]).strftime("%Y-%m-%d %H:%M")
                if r["last_used"] else "-")
        stale = "" if r["format"] == FORMAT else f"  (old format {r['format']})"
        lines.append(f"  {r['key'][:12]:<12} {str(r['model'])[:36]:<36} {r['dim'] or '-':>5} "
                     f"{r['texts']:>9} {r['shards']:>6} {_size(r['bytes']):>10}  {when}{stale}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hnm cache", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("action", choices=["info", "clear"], help="show or empty the cache")
    parser.add_argument("--dir", type=Path, default=None,
                        help="the embedding cache folder (default: $HNM_CACHE_DIR/embeddings)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    root = (args.dir or default_dir()).expanduser()
    if args.action == "info":
        print(show(root))
        return
    files, freed = clear(root) if root.is_dir() else (0, 0)
    print(f"embedding cache {root}: removed {files} file(s), {_size(freed)}")


if __name__ == "__main__":  # pragma: no cover
    main()
