"""``hnm data check``: report train/eval overlap (exact and near duplicates) of a dataset.

The dataset and training pairs come from ``conf/train.yaml`` exactly as ``hnm train`` would
compose them (``data=…``, ``data.max_train_pairs``, ``experiment=…``, ``seed``); the check's
own knobs are ``leakage.*`` (see :class:`hnm.data.leakage.LeakageCheck`). It is a report: the
exit status is 0 whatever it finds (2 for a bad dataset or option).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from omegaconf import DictConfig

from hnm.data.dataset import TrainPairs
from hnm.data.leakage import LeakageCheck, Overlap, summary
from hnm.errors import ConfigError, HnmError

log = logging.getLogger(__name__)

USAGE = """usage: hnm data check [overrides…] [leakage.KEY=VALUE…]

Reports evaluation queries and positive documents that are exact or near duplicates of
training ones (the pairs `hnm train` would use with the same overrides).

  hnm data check                                  # stdlib_code, its train vs test split
  hnm data check data.eval_split=dev              # train vs the dev split (what sweeps tune on)
  hnm data check data=beir data.path=~/beir/scifact data.max_train_pairs=null
  hnm data check leakage.threshold=0.6 leakage.measure=containment leakage.examples=10

leakage.* keys: threshold (0.8), measure (jaccard | containment), query_unit (char),
query_n (5), doc_unit (word), doc_n (5), examples (5: shown per kind),
output (null: a JSON file to write the report to; never overwritten)."""


def main(argv: list[str]) -> None:
    """Entry point of ``hnm data``; ``argv`` excludes the program name."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        if not argv:
            raise SystemExit(2)
        return
    action, *rest = argv
    if action != "check":
        print(f"hnm data: unknown action {action!r}; expected: check\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] "
                        "%(message)s")
    try:
        knobs, overrides = split_knobs(rest)
        check(compose(overrides), knobs)
    except HnmError as err:
        print(f"\nhnm: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def split_knobs(args: list[str]) -> tuple[dict[str, Any], list[str]]:
    """``leakage.KEY=VALUE`` arguments (parsed with Hydra's override grammar) and the rest."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    knobs: dict[str, Any] = {}
    rest = []
    for arg in args:
        if not arg.lstrip("+~").startswith("leakage."):
            rest.append(arg)
            continue
        try:
            (ov,) = OverridesParser.create().parse_overrides([arg.lstrip("+")])
        except HydraException as err:
            raise ConfigError(f"{arg}: not a KEY=VALUE override ({err})") from err
        knobs[ov.key_or_group.split(".", 1)[1]] = ov.value()
    return knobs, rest


def compose(overrides: list[str]) -> DictConfig:
    """``conf/train.yaml`` composed with ``overrides``; composition errors are user errors."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    from hnm.cli import config_dir

    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return hydra_compose("train", overrides=overrides)
    except HydraException as err:
        from hnm.hydra_errors import hydra_message

        reason = hydra_message(err) or " ".join(str(err).split())
        raise ConfigError(f"hnm data check {' '.join(overrides)}: {reason}") from err


def check(cfg: DictConfig, knobs: dict[str, Any]) -> list[Overlap]:
    """Load the data, run the check, print the table and examples; returns the overlaps."""
    from hnm.config_check import instantiate
    from hnm.hydra_errors import user_message

    examples = int(knobs.pop("examples", 5))
    output = knobs.pop("output", None)
    try:
        checker = LeakageCheck(**knobs)
    except TypeError as err:
        raise ConfigError(f"leakage.*: {err}; see `hnm data check --help`") from err
    try:
        data = instantiate(cfg.data.source, "data.source")  # as hnm.train.load_data
        if cfg.data.get("name"):
            data.name = str(cfg.data.name)
        pairs = TrainPairs.from_split(data, cfg.data.train_split, cfg.data.max_train_pairs,
                                      cfg.seed)
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise
        raise ConfigError(message) from err
    split = str(cfg.data.eval_split)
    overlaps = checker(data, pairs, split)
    print_report(data, overlaps, split, examples, cfg.data.max_train_pairs)
    if output:
        from pathlib import Path

        from hnm.runinfo import write_json

        write_json(Path(str(output)).expanduser(), {
            "dataset": data.name, "eval_split": split, "threshold": checker.threshold,
            "measure": checker.measure, "summary": summary(overlaps, split),
            "overlaps": [{"kind": o.kind, "n_train": o.n_train, "n_eval": o.n_eval,
                          "exact": o.exact, "near": o.near,
                          "matches": [dict(zip(("eval_id", "train_id", "similarity", "exact"),
                                               m)) for m in o.matches]} for o in overlaps]})
    return overlaps


def print_report(data: Any, overlaps: list[Overlap], split: str, examples: int,
                 max_pairs: Any) -> None:
    from rich.table import Table

    from hnm.report import print_table

    table = Table(title=f"leakage: {data.name} train pairs vs {split} split")
    for col in ("overlap", "train", split, "exact", "near", f"{split} share"):
        table.add_column(col, justify="left" if col == "overlap" else "right")
    for o in overlaps:
        table.add_row(f"{o.kind}", str(o.n_train), str(o.n_eval), str(o.exact), str(o.near),
                      f"{(o.exact + o.near) / max(o.n_eval, 1):.2%}")
    print_table(table)
    if max_pairs is not None:
        print(f"(training pairs capped by data.max_train_pairs={max_pairs}; "
              "data.max_train_pairs=null checks the whole train split)")
    for o in overlaps:
        text = data.queries.__getitem__ if o.kind == "queries" else data.doc_text
        for e, t, s, exact in o.matches[:examples]:
            print(f"\n{o.kind}: {'exact' if exact else f'near ({s:.3f})'}\n"
                  f"  {split} {e}: {_short(text(e))}\n  train {t}: {_short(text(t))}")
    if not any(o.matches for o in overlaps):
        print("no exact or near duplicates found")


def _short(text: str, width: int = 110) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"
