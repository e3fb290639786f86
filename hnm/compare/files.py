"""Names of the per-query evaluation files in a run folder, and their writer.

A run folder keeps, for every evaluation stage (``zero_shot``, ``test``, …), the per-query
metrics and the TREC run behind its mean metrics, so that runs can be compared query by query
(``hnm compare``) or re-scored with other tools (``trec_eval``):

- ``{stage}_per_query.jsonl`` and ``{stage}_run.trec`` when the stage evaluated one dataset
  (what ``hnm train`` writes);
- ``{stage}_{dataset}_per_query.jsonl`` and ``{stage}_{dataset}_run.trec`` for one dataset of
  several.

Either file may also end in ``.gz``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hnm.runinfo import claim

PER_QUERY = "per_query.jsonl"
RUN = "run.trec"


def stage_file(folder: Path, stage: str, kind: str, dataset: str | None = None) -> Path:
    """The path of ``kind`` (:data:`PER_QUERY` or :data:`RUN`) of ``stage`` in ``folder``."""
    middle = f"{stage}_{dataset}" if dataset else stage
    return folder / f"{middle}_{kind}"


def find_per_query(folder: Path, stage: str, dataset: str, only_dataset: bool) -> Path | None:
    """The per-query metrics file of ``stage``/``dataset`` in a run folder, if there is one.

    Args:
        folder: the run folder.
        stage, dataset: as in the metric key ``{stage}/{dataset}/{metric}``.
        only_dataset: whether ``dataset`` is the stage's only dataset, so that the file
            without a dataset name belongs to it.
    """
    names = [stage_file(folder, stage, PER_QUERY, dataset)]
    if only_dataset:
        names.append(stage_file(folder, stage, PER_QUERY))
    for name in names:
        for path in (name, name.with_name(name.name + ".gz")):
            if path.is_file():
                return path
    return None


def write_eval_outputs(evaluator: Any, folder: Path, stage: str,
                       dataset: str | None = None) -> None:
    """Write an evaluator's last ``per_query`` metrics and ``run`` for ``stage``.

    Does nothing on a non-zero rank of a multi-process job (rank 0 writes), and refuses to
    overwrite existing files.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from hnm.eval.run_io import write_per_query, write_trec_run

    if getattr(rank_zero_only, "rank", 0) != 0:
        return
    per_query = stage_file(folder, stage, PER_QUERY, dataset)
    run = stage_file(folder, stage, RUN, dataset)
    claim(per_query, per_query.name)
    claim(run, run.name)
    write_per_query(evaluator.per_query, per_query)
    write_trec_run(evaluator.run, run)
