"""MTEB retrieval tasks as hnm datasets (``hnm eval eval.datasets=[mteb:SciFact]``).

The optional ``mteb`` package (``pip install 'hnm[mteb]'``, imported only when an
``mteb:`` spec is used) supplies the task: its Hugging Face dataset and pinned revision, its
evaluation splits and subsets, and its loader. The loaded corpus, queries and judgements
become a :class:`~hnm.data.dataset.RetrievalData` named after the task, which hnm scores
with its own :class:`~hnm.eval.RetrievalEvaluator`, so the metric keys and values are those
of ``hnm train`` (``test/SciFact/ndcg@10``: nDCG@10 is MTEB's main retrieval score).

Departures from ``mteb.evaluate``: documents are encoded as hnm's ``title: text`` (MTEB
joins title and text with a space); prompts and instructions are not used; tasks that ignore
a query's own id among the results (ArguAna, Quora, …) are honoured by the caller through
the returned ``ignore_identical_ids`` flag. Only text retrieval tasks are supported.

When the task's data is neither in the local Hugging Face cache nor downloadable (hub access
off, no network), :func:`load_mteb_task` raises a :class:`~hnm.errors.DataError` naming the
dataset and revision that are missing and how to fetch them.
"""

from __future__ import annotations

import os
from typing import Any

from hnm.data.dataset import RetrievalData
from hnm.errors import ConfigError, DataError


def _get_task(name: str) -> Any:
    try:
        import mteb
    except ImportError as err:
        raise ConfigError(f"mteb:{name} needs the optional package mteb: "
                          "pip install 'hnm[mteb]' (or pip install mteb)") from err
    try:
        return mteb.get_task(name)
    except (KeyError, ValueError) as err:
        raise ConfigError(f"mteb:{name}: not an MTEB task name ({err}); task names are "
                          "case-sensitive, e.g. mteb:SciFact, mteb:NFCorpus") from err


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def missing_data_message(task: str, dataset: dict[str, Any], err: BaseException) -> str:
    """The paragraph shown when a task's data cannot be loaded."""
    where = f"{dataset.get('path')!r} (revision {dataset.get('revision') or 'latest'})"
    how = ("It is not in the local Hugging Face cache and hub access is off (HF_HUB_OFFLINE=1, "
           "hnm's default): download it once with HF_HUB_OFFLINE=0 on a machine with network "
           "access (the same cache, HF_HOME, is then used offline)" if _offline() else
           "The hub could not be reached or refused the download; check the network and "
           "HF_TOKEN, or copy a filled Hugging Face cache (HF_HOME) to this machine")
    return (f"MTEB task {task} needs the Hugging Face dataset {where}. {how}. "
            f"Cause: {type(err).__name__}: {str(err)[:300]}")


def load_mteb_task(name: str, subset: str | None = None, split: str | None = None
                   ) -> tuple[RetrievalData, str, bool]:
    """Load an MTEB retrieval task.

    Args:
        name: the task name (``SciFact``).
        subset: the language/subset of a multilingual task (required when it has several).
        split: the evaluation split; by default the task's first evaluation split.

    Returns:
        ``(data, split, ignore_identical_ids)``: the data (named ``TASK`` or ``TASK.SUBSET``,
        its qrels holding ``split``), the split, and whether a document whose id equals the
        query id must be removed from that query's results (MTEB's convention for the task).

    Raises:
        ConfigError: mteb is missing, or the task, split or subset does not exist.
        DataError: the task's data is not available (see :func:`missing_data_message`).
    """
    task = _get_task(name)
    meta = task.metadata
    if meta.type != "Retrieval" or "text" not in (getattr(meta, "modalities", None) or ["text"]):
        raise ConfigError(f"mteb:{name} is a {meta.type} task; hnm eval runs text retrieval "
                          "tasks only")
    splits = list(meta.eval_splits)
    split = split or splits[0]
    if split not in splits:
        raise ConfigError(f"mteb:{name} has no evaluation split {split!r}; its splits: "
                          f"{', '.join(splits)} (set eval.split)")
    subsets = list(getattr(task, "hf_subsets", None) or ["default"])
    if subset is None and len(subsets) > 1:
        raise ConfigError(f"mteb:{name} has several subsets; name one as mteb:{name}/SUBSET, "
                          f"one of: {', '.join(subsets)}")
    subset = subset or subsets[0]
    if subset not in subsets:
        raise ConfigError(f"mteb:{name} has no subset {subset!r}; its subsets: "
                          f"{', '.join(subsets)}")
    try:
        task.load_data()
    except OSError as err:  # offline, unreachable, not found, gated: all OSError subclasses
        raise DataError(missing_data_message(name, dict(meta.dataset), err)) from err
    part = task.dataset[subset][split]
    data = RetrievalData(name if subset == "default" else f"{name}.{subset}",
                         corpus=_corpus(part["corpus"]), queries=_queries(part["queries"]),
                         qrels={split: {str(q): {str(d): int(r) for d, r in docs.items()}
                                        for q, docs in part["relevant_docs"].items()}})
    data.check_qrels(source=f"mteb:{name}")
    return data, split, bool(getattr(task, "ignore_identical_ids", False))


def _column(ds: Any, *names: str) -> list[Any] | None:
    cols = getattr(ds, "column_names", None) or []
    found = next((n for n in names if n in cols), None)
    return None if found is None else list(ds[found])


def _corpus(ds: Any) -> dict[str, dict[str, str]]:
    ids, texts = _column(ds, "id", "_id"), _column(ds, "text")
    if ids is None or texts is None:
        raise DataError(f"MTEB corpus without id/text columns: {getattr(ds, 'column_names', ds)}")
    titles = _column(ds, "title") or [""] * len(ids)
    return {str(i): {"title": str(t or ""), "text": str(x or "")}
            for i, t, x in zip(ids, titles, texts)}


def _queries(ds: Any) -> dict[str, str]:
    ids, texts = _column(ds, "id", "_id"), _column(ds, "text")
    if ids is None or texts is None:
        raise DataError(f"MTEB queries without id/text columns: "
                        f"{getattr(ds, 'column_names', ds)}")
    return {str(i): str(x or "") for i, x in zip(ids, texts)}
