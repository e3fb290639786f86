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
from hnm.errors import HnmError

log = logging.getLogger("hnm")


def _friendly(fn: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    @functools.wraps(fn)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return fn(cfg)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's input
            message = user_message(err)
            if message is None:
                raise
            log.error("%s", message)
            print(f"\nhnm: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def user_message(err: BaseException) -> str | None:
    """The one-paragraph message of a user error, looking through Hydra's instantiate
    wrappers; None for a bug (which keeps its traceback)."""
    import re

    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, HnmError):
            return str(seen)
        if isinstance(seen, (MissingMandatoryValue, InterpolationToMissingValueError)):
            found = re.search(r"Missing mandatory value: ([\w.\[\]]+)", str(seen))
            key = found.group(1) if found else (getattr(seen, "full_key", None) or "a value")
            hint = (" (a folder with corpus.jsonl, queries.jsonl and qrels/)"
                    if key == "data.path" else "")
            return (f"{key} is required but was not given: pass {key}=…{hint} on the "
                    "command line")
        seen = seen.__cause__ or seen.__context__
    return None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@_friendly
def train_main(cfg: DictConfig) -> float:
    from hnm.train import train

    return train(cfg)


def _not_yet(name: str) -> Callable[[], None]:
    def run() -> None:
        print(f"hnm {name}: not available in this version", file=sys.stderr)
        raise SystemExit(2)

    return run


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval_cmd")
@_friendly
def eval_main(cfg: DictConfig) -> None:
    from hnm.commands.eval import evaluate

    evaluate(cfg)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="mine")
@_friendly
def mine_main(cfg: DictConfig) -> None:
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
