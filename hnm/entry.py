"""Hydra entry points of the subcommands; user errors become one paragraph and exit 2."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from hnm.cli import config_dir
from hnm.errors import StartRefused
from hnm.hydra_errors import user_message
from hnm.logging_setup import file_only

log = logging.getLogger("hnm")


def _friendly(fn: Callable[[DictConfig], Any] | None = None, *, run_status: bool = False
              ) -> Any:
    """User errors: one paragraph and exit 2 (a bug keeps its traceback). Inside a sweep
    (``-m``) a failed job is recorded instead and the sweep goes on: see :func:`_job_failed`.
    ``run_status``: a failure also marks the run folder failed (``status.json``), unless the
    run was refused before it started (:class:`~hnm.errors.StartRefused`: the folder may be
    another run's)."""
    if fn is None:
        return functools.partial(_friendly, run_status=run_status)

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's input
            message = user_message(err)
            refused = isinstance(err, StartRefused)  # nothing written: the folder stays as it is
            if run_status and not refused:
                _record_failure(err, message)
            if _in_multirun():
                return _job_failed(err, message)
            if message is None:
                raise
            if not refused:  # the terminal gets the paragraph below; the log file keeps it
                file_only(message, logging.ERROR)
            print(f"\nhnm: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


class JobFailed(RuntimeError):
    """One job of a sweep failed (its one-line reason); raised to sweepers that handle failed
    jobs themselves (Optuna marks the trial failed). Plain and picklable, whatever the error
    was, so that parallel launchers can send it back."""


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except (ImportError, ValueError):
        return False


def one_line(err: BaseException, message: str | None) -> str:
    """The failure's reason on one line: the user message, else ``Type: first line``."""
    text = message if message is not None else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


def _record_failure(err: BaseException, message: str | None) -> None:
    """Stop the job's other DDP ranks, and mark its run folder failed (``status.json``) unless
    the run already recorded an interruption. Rank 0 only: the other ranks share the folder."""
    from hnm.dist import env_rank, stop_launched_ranks
    from hnm.runinfo import read_status, run_dir, write_status

    stop_launched_ranks()
    if env_rank() != 0:
        return
    out = run_dir()
    try:
        status = read_status(out) or {}
        if status.get("state") == "interrupted":
            return
        extra = {k: v for k, v in status.items() if k not in ("state", "updated", "error")}
        write_status(out, "failed", **{**extra, "error": one_line(err, message),
                                       "user_error": message is not None})
    except OSError as oserr:  # an unwritable folder must not hide the run's own error
        log.warning("could not write %s/status.json: %s", out, oserr)


def _job_failed(err: BaseException, message: str | None) -> Any:
    """A sweep's job failed: say so (a bug with its traceback, in the job's log too) and let
    the sweep go on with the next job; the sweep's summary lists the failure and the sweep
    exits non-zero (:class:`~hnm.callbacks.sweep_summary.SweepSummary`).

    Hydra's basic sweeper re-raises a failed job's exception once its batch is done, which
    would end the sweep before the next batch and the summary; so for it the failed job returns
    None. Other sweepers (Optuna, …) use the value as an objective: they get :class:`JobFailed`
    and mark the trial failed (Optuna: ``hydra.sweeper.max_failure_rate``)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    reason = one_line(err, message)
    where = f"job #{hc.job.num} ({hc.runtime.output_dir})"
    if message is None:
        log.error("%s failed; the sweep goes on with the next job", where, exc_info=err)
    else:
        log.error("%s failed: %s; the sweep goes on with the next job", where, message)
    print(f"\nhnm: error: {where}: {reason}", file=sys.stderr)
    if str(hc.sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        return None
    raise JobFailed(reason) from None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@_friendly(run_status=True)
def train_main(cfg: DictConfig) -> float:
    from hnm.logging_setup import quiet_libraries

    quiet_libraries()
    from hnm.train import train

    return train(cfg)


def _not_yet(name: str) -> Callable[[], None]:
    def run() -> None:
        print(f"hnm {name}: not available in this version", file=sys.stderr)
        raise SystemExit(2)

    return run


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval_cmd")
@_friendly(run_status=True)
def eval_main(cfg: DictConfig) -> None:
    from hnm.logging_setup import quiet_libraries

    quiet_libraries()
    from hnm.commands.eval import evaluate

    evaluate(cfg)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="mine")
@_friendly(run_status=True)
def mine_main(cfg: DictConfig) -> None:
    from hnm.logging_setup import quiet_libraries

    quiet_libraries()
    from hnm.commands.mine import mine

    mine(cfg)


def compare_main() -> None:
    from hnm.commands.compare import main

    main()


def data_main() -> None:
    from hnm.commands.data import main

    main(sys.argv[1:])


if __name__ == "__main__":  # how Lightning's DDP launcher starts the other ranks of `hnm train`
    train_main()
