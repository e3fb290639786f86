"""Read a dataset in the BEIR folder layout.

::

    DIR/corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."} per line
    DIR/queries.jsonl       {"_id": "q1", "text": "..."} per line
    DIR/qrels/train.tsv     query-id <TAB> corpus-id <TAB> score (graded int), header line
    DIR/qrels/dev.tsv       (optional)
    DIR/qrels/test.tsv

Every problem is reported as a :class:`~hnm.errors.DataError` naming the file, the 1-based
line number and what was expected. A line longer than :data:`MAX_LINE_BYTES` (64 MiB) is
refused before it is read whole: no record of a retrieval corpus is that long, and reading and
parsing one would take gigabytes (texts up to that size are read, and the encoders cut them to
what the model reads before tokenizing: :mod:`hnm.encoders.clip`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from hnm.data.dataset import RetrievalData
from hnm.errors import DataError

log = logging.getLogger(__name__)

_USAGE = "pass data.path=DIR, a folder with corpus.jsonl, queries.jsonl and qrels/"
MAX_LINE_BYTES = 64 * 2**20


def load_beir(path: str | None, name: str | None = None,
              splits: list[str] | None = None,
              fields: list[str] | None = None) -> RetrievalData:
    """Load a BEIR-layout folder.

    Args:
        path: the dataset folder (``~`` is expanded).
        name: dataset name used in metric keys; defaults to the folder's name.
        splits: qrels splits to read (``qrels/{split}.tsv``); by default every ``.tsv`` file
            in ``qrels/``.
        fields: extra corpus-line fields to keep in each document's dict (as strings), e.g.
            the hierarchy of ``+miner=taxonomy``; a dotted name walks nested objects
            (``metadata.category``), a list value is joined with ``.``. A document without
            the field just lacks the key.

    Returns:
        :class:`RetrievalData`; judgements referencing unknown ids are dropped with a warning.

    Raises:
        DataError: the folder or a file is missing or malformed.
    """
    if not path:
        raise DataError(f"data.path is required: {_USAGE}")
    root = Path(str(path)).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={path!r}: no such folder; {_USAGE}")
    for required in ("corpus.jsonl", "queries.jsonl", "qrels"):
        kind = "folder" if required == "qrels" else "file"
        if not ((root / required).is_dir() if kind == "folder" else (root / required).is_file()):
            raise DataError(
                f"data.path={path!r} has no {required} {kind}: a BEIR folder holds corpus.jsonl, "
                "queries.jsonl and qrels/{train,dev,test}.tsv"
            )
    corpus = {
        doc_id: {"title": str(obj.get("title") or ""), "text": obj["text"],
                 **_extra_fields(obj, fields or ())}
        for doc_id, obj in _read_jsonl(root / "corpus.jsonl", ("_id", "text"))
    }
    queries = {qid: obj["text"] for qid, obj in _read_jsonl(root / "queries.jsonl",
                                                                 ("_id", "text"))}
    if not any(d["title"].strip() or d["text"].strip() for d in corpus.values()):
        raise DataError(f"{root / 'corpus.jsonl'}: every document's 'title' and 'text' are "
                        "empty; there is nothing to retrieve")
    if not any(t.strip() for t in queries.values()):
        raise DataError(f"{root / 'queries.jsonl'}: every query's 'text' is empty")
    qrels_dir = root / "qrels"
    if splits:
        files = [qrels_dir / f"{split}.tsv" for split in splits]
        for file in files:
            if not file.is_file():
                available = sorted(p.stem for p in qrels_dir.glob("*.tsv"))
                raise DataError(
                    f"{file}: no such qrels file for split {file.stem!r}; available splits: "
                    f"{', '.join(available) or 'none'}"
                )
    else:
        files = sorted(qrels_dir.glob("*.tsv"))
        if not files:
            raise DataError(
                f"{qrels_dir} holds no qrels file: expected train.tsv, dev.tsv or test.tsv "
                "with lines 'query-id<TAB>corpus-id<TAB>score'"
            )
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    lines: dict[str, dict[tuple[str, str], str]] = {}
    for file in files:
        qrels[file.stem], lines[file.stem] = _read_qrels(file)
    data = RetrievalData(name or root.resolve().name, corpus, queries, qrels)
    data.check_qrels(source=str(root), lines=lines)
    log.info("%s: %d documents, %d queries, qrels %s", data.name, len(corpus), len(queries),
             {split: sum(map(len, q.values())) for split, q in data.qrels.items()})
    return data


def _extra_fields(obj: dict, fields: Iterable[str]) -> dict[str, str]:
    """The requested fields of a corpus line that it has, as strings (see ``load_beir``)."""
    out = {}
    for name in fields:
        value: object = obj
        for part in str(name).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or value == "":
            continue
        out[str(name)] = ".".join(map(str, value)) if isinstance(value, list) else str(value)
    return out


def _lines(file: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a UTF-8 text file with their 1-based numbers; an empty, binary or
    non-UTF-8 file is a :class:`DataError` naming the file (and the line)."""
    blank = True
    with file.open("rb") as fh:
        for number, raw in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""),
                                     start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{file} line {number}: longer than {MAX_LINE_BYTES // 2**20} "
                                "MiB; hnm reads records up to that size (one JSON object or "
                                "qrels row per line)")
            if number == 1 and raw[:2] == b"\x1f\x8b":
                raise DataError(f"{file}: a gzip-compressed file; decompress it first "
                                f"(gunzip), hnm reads plain UTF-8 text")
            if b"\x00" in raw:
                raise DataError(f"{file} line {number}: holds NUL bytes, so it is a binary "
                                "file, not UTF-8 text with one record per line")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{file} line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                    f"column {err.start + 1}); expected UTF-8 text with one record per line"
                ) from None
            if line.strip():
                blank = False
                yield number, line.rstrip("\r\n").lstrip("\ufeff")
    if blank:
        raise DataError(f"{file}: the file is empty; expected one record per line")


def _read_jsonl(file: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """``(id, object)`` per line of a JSONL file whose objects must hold ``required`` keys:
    ``_id`` a string or an integer, ``text`` (and ``title``, when given) a string. A repeated
    ``_id`` is refused with both line numbers (one of the two would silently be lost)."""
    first_line: dict[str, int] = {}
    for number, line in _lines(file):
        where = f"{file} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{where}: not valid JSON ({err.msg} at column {err.colno}); each line of "
                f"{file.name} must be one JSON object with {', '.join(map(repr, required))}"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        missing = [key for key in required if obj.get(key) is None]
        if missing:
            found = ", ".join(f"{k!r}: null" for k in missing if k in obj)
            raise DataError(f"{where}: missing {', '.join(map(repr, missing))}"
                            f"{f' (found {found})' if found else ''}; each object in "
                            f"{file.name} needs {', '.join(map(repr, required))}")
        raw_id = obj["_id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise DataError(f"{where}: '_id' is {json.dumps(raw_id)}; expected a non-empty "
                            "string or an integer")
        for key in ("text", "title"):
            if key in obj and obj[key] is not None and not isinstance(obj[key], str):
                raise DataError(f"{where}: {key!r} is {type(obj[key]).__name__} "
                                f"{json.dumps(obj[key])[:60]}; expected a string")
        doc_id = str(raw_id)
        if doc_id in first_line:
            raise DataError(f"{where}: '_id' {doc_id!r} repeats line {first_line[doc_id]}; "
                            f"each '_id' in {file.name} must be unique (hnm would keep only "
                            "one of them)")
        first_line[doc_id] = number
        yield doc_id, obj


def _read_qrels(file: Path) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], str]]:
    """``query id -> doc id -> score`` from a BEIR qrels TSV (header line optional), and where
    each judgement was read (``(query id, doc id) -> "FILE line N"``) for later warnings."""
    qrels: dict[str, dict[str, int]] = {}
    where_read: dict[tuple[str, str], str] = {}
    for number, line in _lines(file):
        fields = line.split("\t")
        if number == 1 and fields[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        where = f"{file} line {number}"
        if len(fields) != 3:
            raise DataError(
                f"{where}: expected 3 tab-separated fields 'query-id<TAB>corpus-id<TAB>score', "
                f"got {len(fields)}: {line[:80]!r}"
            )
        qid, doc_id, score = (f.strip() for f in fields)
        try:
            value = float(score)
            if value != int(value):
                raise ValueError
        except (ValueError, OverflowError):
            raise DataError(f"{where}: score {score!r} is not an integer relevance grade "
                            "(0, 1, 2, …)") from None
        qrels.setdefault(qid, {})[doc_id] = int(value)
        where_read[qid, doc_id] = where
    if not qrels:
        raise DataError(f"{file}: no judgement, only a header; expected lines "
                        "'query-id<TAB>corpus-id<TAB>score'")
    return qrels, where_read
