"""Read a BEIR-style dataset from the Hugging Face hub or from a ``save_to_disk`` folder.

Hub layouts (rows ``_id``/``title``/``text``, ``_id``/``text`` and
``query-id``/``corpus-id``/``score``):

- MTEB (``mteb/scifact``): configs ``corpus`` and ``queries``; qrels in the ``default``
  config, one split per evaluation split.
- BEIR (``BeIR/scifact``): configs ``corpus`` and ``queries``; qrels in a separate
  ``BeIR/scifact-qrels`` dataset.

Local layouts (written with ``datasets.save_to_disk``):

- one ``DatasetDict`` with the splits ``corpus``, ``queries`` and one split per qrels split;
- a folder with ``corpus/``, ``queries/`` and ``qrels/`` sub-folders (``qrels/`` a
  ``DatasetDict`` of qrels splits).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hnm.data.dataset import RetrievalData
from hnm.errors import DataError

log = logging.getLogger(__name__)

_QRELS_COLUMNS = (("query-id", "query_id"), ("corpus-id", "corpus_id"), ("score",))


def load_hf(name: str, config: str | None = None, corpus_config: str = "corpus",
            queries_config: str = "queries", qrels_name: str | None = None,
            splits: list[str] | None = None,
            fields: list[str] | None = None) -> RetrievalData:
    """Load a retrieval dataset by hub name or from a local ``save_to_disk`` folder.

    Args:
        name: hub dataset id (``mteb/scifact``) or a local folder (``~`` expanded).
        config: hub config holding the qrels (``default`` for MTEB datasets).
        corpus_config: hub config holding the corpus.
        queries_config: hub config holding the queries.
        qrels_name: hub dataset holding the qrels when it is a separate dataset; by default
            ``name`` itself, then ``{name}-qrels``.
        splits: qrels splits to keep; all by default.
        fields: extra corpus columns to keep in each document's dict (as strings; a list
            value joined with ``.``), e.g. the hierarchy of ``+miner=taxonomy``.

    Returns:
        :class:`RetrievalData` named after the last part of ``name``.

    Raises:
        DataError: the dataset cannot be loaded or lacks a column or split.
    """
    if not name:
        raise DataError("data.name is required: a Hugging Face dataset id such as "
                        "'mteb/scifact', or a folder written by datasets.save_to_disk")
    folder = Path(str(name)).expanduser()
    if folder.exists():
        corpus_ds, queries_ds, qrels = _from_disk(folder)
    elif str(name).startswith(("/", ".", "~")):
        raise DataError(f"data.name={name!r}: no such folder (a folder written by "
                        "datasets.save_to_disk, or a Hugging Face dataset id)")
    else:
        corpus_ds = _one_split(_hub(name, corpus_config), "corpus", name)
        queries_ds = _one_split(_hub(name, queries_config), "queries", name)
        qrels = _hub_qrels(name, config, qrels_name)
    if splits:
        missing = [s for s in splits if s not in qrels]
        if missing:
            raise DataError(f"dataset {name!r} has no qrels split {', '.join(missing)}; "
                            f"available splits: {', '.join(sorted(qrels)) or 'none'}")
        qrels = {s: qrels[s] for s in splits}
    if not qrels:
        raise DataError(f"dataset {name!r} has no qrels split (rows query-id, corpus-id, score)")
    ids, bodies = _columns(corpus_ds, "corpus", name, ("_id",), ("text",))
    _unique(ids, "corpus", name)
    titles = list(corpus_ds["title"]) if "title" in corpus_ds.column_names else [""] * len(ids)
    corpus = {str(i): {"title": str(t or ""), "text": str(x or "")}
              for i, t, x in zip(ids, titles, bodies)}
    for field in fields or ():
        (values,) = _columns(corpus_ds, "corpus", name, (str(field),))
        for i, v in zip(ids, values):
            if v is not None and v != "":
                corpus[str(i)][str(field)] = ".".join(map(str, v)) if isinstance(v, list) \
                    else str(v)
    qids, texts = _columns(queries_ds, "queries", name, ("_id",), ("text",))
    _unique(qids, "queries", name)
    queries = {str(q): str(t or "") for q, t in zip(qids, texts)}
    judged: dict[str, dict[str, dict[str, int]]] = {}
    for split, ds in qrels.items():
        table: dict[str, dict[str, int]] = {}
        what = f"qrels split {split!r}"
        for row, (q, d, s) in enumerate(zip(*_columns(ds, what, name, *_QRELS_COLUMNS))):
            table.setdefault(str(q), {})[str(d)] = _grade(s, f"dataset {name!r}, {what}, row {row}")
        judged[split] = table
    data = RetrievalData(folder.name if folder.exists() else str(name).rstrip("/").split("/")[-1],
                         corpus, queries, judged)
    data.check_qrels(source=str(name))
    log.info("%s: %d documents, %d queries, qrels %s", data.name, len(corpus), len(queries),
             {s: sum(map(len, q.values())) for s, q in data.qrels.items()})
    return data


def _from_disk(folder: Path) -> tuple[Any, Any, dict[str, Any]]:
    """``(corpus, queries, {split: qrels})`` datasets from a ``save_to_disk`` folder."""
    import datasets

    def load(path: Path) -> Any:
        try:
            return datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError, OSError) as err:
            raise DataError(f"{path}: not a folder written by datasets.save_to_disk "
                            f"({err})") from err

    parts = {p: folder / p for p in ("corpus", "queries", "qrels")}
    if all(path.is_dir() for path in parts.values()):
        qrels = load(parts["qrels"])
        if not isinstance(qrels, datasets.DatasetDict):
            raise DataError(f"{parts['qrels']}: expected a DatasetDict with one split per "
                            "qrels split (train, dev, test), got a single Dataset")
        return (_one_split(load(parts["corpus"]), "corpus", str(folder)),
                _one_split(load(parts["queries"]), "queries", str(folder)), dict(qrels))
    whole = load(folder)
    if not isinstance(whole, datasets.DatasetDict) or not {"corpus", "queries"} <= set(whole):
        raise DataError(
            f"{folder}: expected a DatasetDict with the splits 'corpus', 'queries' and one per "
            "qrels split, or a folder with corpus/, queries/ and qrels/ sub-folders"
        )
    qrels = {s: ds for s, ds in whole.items() if s not in ("corpus", "queries")}
    return whole["corpus"], whole["queries"], qrels


def _one_split(ds: Any, what: str, name: str) -> Any:
    """The dataset itself, or its split named ``what``, or its only split."""
    if not hasattr(ds, "keys"):
        return ds
    if what in ds:
        return ds[what]
    if len(ds) == 1:
        return next(iter(ds.values()))
    raise DataError(f"dataset {name!r}: cannot tell which split holds the {what}; "
                    f"expected a split named {what!r}, found {', '.join(ds)}")


def _columns(ds: Any, what: str, name: str, *columns: tuple[str, ...]) -> list[list]:
    """Lists of the given columns; each column is a tuple of accepted spellings."""
    out = []
    for spellings in columns:
        found = next((c for c in spellings if c in ds.column_names), None)
        if found is None:
            raise DataError(f"dataset {name!r}: the {what} has no column {spellings[0]!r}; "
                            f"its columns are {', '.join(ds.column_names)}")
        out.append(list(ds[found]))
    return out


def _unique(ids: list, what: str, name: str) -> None:
    """Refuse a repeated id (one of the two rows would silently be lost), naming both rows."""
    first: dict[str, int] = {}
    for row, i in enumerate(ids):
        if str(i) in first:
            raise DataError(f"dataset {name!r}: the {what} repeats '_id' {str(i)!r} in rows "
                            f"{first[str(i)]} and {row}; each '_id' must be unique")
        first[str(i)] = row


def _grade(score: Any, where: str) -> int:
    """A qrels score as an integer relevance grade, or a :class:`DataError` naming the row."""
    try:
        value = float(score)
        if value == int(value) and not isinstance(score, bool):
            return int(value)
    except (TypeError, ValueError, OverflowError):
        pass
    raise DataError(f"{where}: score {score!r} is not an integer relevance grade (0, 1, 2, …)")


def _hub_qrels(name: str, config: str | None, qrels_name: str | None) -> dict[str, Any]:
    """Qrels splits from ``qrels_name``, else ``name``'s qrels config, else ``{name}-qrels``."""
    if qrels_name:
        return dict(_hub(qrels_name, config))
    try:
        return dict(_hub(name, config or "default"))
    except DataError as first:
        try:
            return dict(_hub(f"{name}-qrels", config))
        except DataError:
            raise first from None


def _hub(name: str, config: str | None) -> Any:
    """``datasets.load_dataset(name, config)``, failures reported as :class:`DataError`."""
    import datasets

    try:
        return datasets.load_dataset(name, config)
    except Exception as err:  # the hub raises many types: offline, missing, gated, ...
        offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                      for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
        why = ("Hub access is off (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set) and it is not "
               "in the local cache" if offline else
               "The hub may be unreachable from this machine, or the name or config is wrong")
        raise DataError(
            f"could not load the Hugging Face dataset {name!r} (config {config!r}): "
            f"{type(err).__name__}: {err}. {why}. Use data=beir "
            "data.path=DIR with a local BEIR folder, or pass a folder written by "
            "datasets.save_to_disk as data.name"
        ) from err
