"""The checks that can refuse a start, run before Hydra makes or writes into a run folder.

Hydra creates the job's folder, writes ``.hydra/`` into it and opens the job's log file
before hnm's code runs; a start refused after that has already written into the folder,
another run's folder included. :class:`Preflight` (a Hydra callback, listed in
``conf/hydra/default.yaml``) runs these checks first, in ``on_run_start`` and
``on_multirun_start``, reading only the composed config and a few small files:

- the output folder holds no run already (``.hydra/``, ``status.json``, ``metrics.json``,
  ``model/``, ``checkpoints/``, ``multirun.yaml``), unless it is the run that ``resume=``
  continues in place, which must not have finished (:mod:`hnm.run_folders`; checked by rank 0
  only: the other ranks of a multi-device run join the folder it made); a start refused
  there for a user error that made nothing does not count: once every check has passed, its
  files move into a ``refused_start_<time>/`` folder inside it, unchanged;
- ``resume=`` names a checkpoint that exists;
- every knob's type and range (:mod:`hnm.knobs`), before torch, Lightning or transformers are
  imported; for ``hnm eval model=RUN`` also with the run folder's settings, whose ``_target_``s
  are checked first (:mod:`hnm.received`);
- the values the chosen options require were given (``data.path`` of ``data=beir``), and the
  embedding cache's folder can be written;
- ``hnm mine``: its output file can be written (before it mines).

A refusal prints one paragraph and exits with status 2 (``SystemExit``: Hydra only warns
about a callback's exceptions); a bug in a check exits 1 with its traceback. The commands run :func:`hnm.knobs.check` again themselves
(a sweep's jobs, tests that call them directly).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from hnm.errors import ConfigError, HnmError
from hnm.run_folders import (
    check_cache_dir,
    check_mine_output,
    check_resume,
    held_run_files,
    path_of,
    rank,
    refuse_if_run,
    refused_start,
    set_aside_refused_start,
)


class Preflight(Callback):
    """Hydra callback: refuse a start (exit 2) before any run folder is made or touched."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_on_error(lambda: check_run(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _refuse_on_error(lambda: check_sweep(config))


def _refuse_on_error(check: Callable[[], None]) -> None:
    """Run ``check``: a user error exits 2 in one paragraph; a bug exits 1 with its traceback
    (Hydra would only warn about it and start the run unchecked)."""
    try:
        check()
    except HnmError as err:
        print(f"hnm: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Exception:  # noqa: BLE001 - a bug: shown, and the run does not start unchecked
        import traceback

        traceback.print_exc()
        raise SystemExit(1) from None


def check_run(cfg: DictConfig) -> None:
    """Every check of a single run (see the module doc)."""
    from hnm import knobs

    task = str(cfg.get("task_name") or "")
    out = path_of(cfg, "hydra.run.dir")
    aside = False
    if out is not None and rank() == 0:  # other ranks join the folder rank 0 checked
        if task == "train" and cfg.get("resume"):
            check_resume(cfg, out)
        elif not (aside := refused_start(out)):
            refuse_if_run(out)
    if task in ("train", "mine"):
        check_given(cfg)
    knobs.check(cfg)
    check_cache_dir(cfg)
    if task == "eval":
        check_eval(cfg)
    if task == "mine":
        check_mine_output(cfg, out)
    if aside and out is not None:  # every check passed: this start goes ahead
        moved = set_aside_refused_start(out)
        print(f"hnm: {out} held a start refused for a user error, which made nothing; its "
              f"files moved to {moved}", file=sys.stderr, flush=True)


def check_sweep(cfg: DictConfig) -> None:
    """A sweep: its folder holds no earlier sweep; the knobs it does not sweep are valid."""
    from hnm import knobs

    sweep = path_of(cfg, "hydra.sweep.dir")
    if sweep is not None and sweep.is_dir():
        held = [p.name for p in sorted(sweep.iterdir()) if p.is_dir() and held_run_files(p)]
        if (sweep / "multirun.yaml").exists() or held:
            raise ConfigError(f"hydra.sweep.dir={sweep} already holds a sweep "
                              f"({', '.join(['multirun.yaml'] + held[:5])}); hnm never writes "
                              "into another run's folder. Choose a new folder, or leave "
                              "hydra.sweep.dir out for a new timestamped one")
    knobs.check(cfg)


def check_eval(cfg: DictConfig) -> None:
    """``hnm eval model=RUN``: the run folder's config names only hnm's own classes, and the
    settings it brings (with the command line's on top) are valid."""
    from hnm import knobs
    from hnm.eval.targets import parse_model, with_poison, with_run_settings

    spec = parse_model(cfg.get("model"))
    if spec.run_config is not None:
        overrides = [str(o) for o in cfg.hydra.overrides.task]
        merged = with_run_settings(cfg, spec.run_config, overrides)
        knobs.check(with_poison(merged, spec.run_config, overrides))


def _missing(node: Any, key: str = "") -> str | None:
    """The first key below ``node`` (Hydra's own left out) whose value is ``???``: not given."""
    from omegaconf import ListConfig, OmegaConf

    if isinstance(node, DictConfig):
        for k in node.keys():
            sub = f"{key}.{k!s}" if key else str(k)
            if sub == "hydra":
                continue
            if OmegaConf.is_missing(node, k):
                return sub
            found = _missing(node._get_node(k), sub)
            if found:
                return found
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            found = _missing(node._get_node(i), f"{key}[{i}]")
            if found:
                return found
    return None


def check_given(cfg: DictConfig) -> None:
    """Every value the chosen options require was given (``data.path`` of ``data=beir``,
    ``encoder.name`` of ``encoder=hf``)."""
    key = _missing(cfg)
    if key:
        hint = (" (a folder with corpus.jsonl, queries.jsonl and qrels/)" if key == "data.path"
                else "")
        raise ConfigError(f"{key} is required but was not given: pass {key}=…{hint} on the "
                          "command line")
