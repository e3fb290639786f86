"""Read a dataset in the BEIR folder layout.

::

    DIR/corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."} per line
    DIR/queries.jsonl       {"_id": "q1", "text": "..."} per line
    DIR/qrels/train.tsv     query-id <TAB> corpus-id <TAB> score (graded int), header line
    DIR/qrels/dev.tsv       (optional)
    DIR/qrels/test.tsv

Every problem is reported as a :class:`~hnm.errors.DataError` naming the file, the 1-based
line number and what was expected.
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
        if not (root / required).exists():
            raise DataError(
                f"data.path={path!r} has no {required}: a BEIR folder holds corpus.jsonl, "
                "queries.jsonl and qrels/{train,dev,test}.tsv"
            )
    corpus = {
        doc_id: {"title": str(obj.get("title") or ""), "text": str(obj["text"]),
                 **_extra_fields(obj, fields or ())}
        for doc_id, obj in _read_jsonl(root / "corpus.jsonl", ("_id", "text"))
    }
    queries = {qid: str(obj["text"]) for qid, obj in _read_jsonl(root / "queries.jsonl",
                                                                 ("_id", "text"))}
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
    qrels = {file.stem: _read_qrels(file) for file in files}
    data = RetrievalData(name or root.resolve().name, corpus, queries, qrels)
    data.check_qrels(source=str(root))
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
    """Non-blank lines of a UTF-8 file with their 1-based numbers."""
    try:
        with file.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{file}: not UTF-8 text ({err})") from err


def _read_jsonl(file: Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict]]:
    """``(id, object)`` per line of a JSONL file whose objects must hold ``required`` keys."""
    seen: set[str] = set()
    duplicates = 0
    for number, line in _lines(file):
        where = f"{file.name} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{where}: not valid JSON ({err.msg} at column {err.colno}); each line of "
                f"{file} must be one JSON object with {', '.join(map(repr, required))}"
            ) from err
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__} "
                            f"(in {file})")
        missing = [key for key in required if obj.get(key) is None]
        if missing:
            raise DataError(f"{where}: missing {', '.join(map(repr, missing))}; each object "
                            f"in {file} needs {', '.join(map(repr, required))}")
        doc_id = str(obj["_id"])
        duplicates += doc_id in seen
        seen.add(doc_id)
        yield doc_id, obj
    if duplicates:
        log.warning("%s: %d line(s) repeat an earlier '_id'; the last one wins", file, duplicates)


def _read_qrels(file: Path) -> dict[str, dict[str, int]]:
    """``query id -> doc id -> score`` from a BEIR qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(file):
        fields = line.split("\t")
        if number == 1 and fields[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        where = f"qrels/{file.name} line {number}"
        if len(fields) != 3:
            raise DataError(
                f"{where}: expected 3 tab-separated fields 'query-id<TAB>corpus-id<TAB>score', "
                f"got {len(fields)}: {line[:80]!r} (in {file})"
            )
        qid, doc_id, score = (f.strip() for f in fields)
        try:
            value = float(score)
            if value != int(value):
                raise ValueError
        except (ValueError, OverflowError):
            raise DataError(f"{where}: score {score!r} is not an integer relevance grade "
                            f"(in {file})") from None
        qrels.setdefault(qid, {})[doc_id] = int(value)
    return qrels
