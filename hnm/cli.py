"""``hnm <subcommand> [hydra overrides]``: pops the subcommand and runs its Hydra entry point."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("WANDB_SILENT", "true")

SUBCOMMANDS = {
    "train": ("hnm.entry:train_main", "train a retriever (default config: conf/train.yaml)"),
    "eval": ("hnm.entry:eval_main", "evaluate a run folder or model on one or more datasets"),
    "mine": ("hnm.entry:mine_main", "mine hard negatives for the training queries to a file"),
    "compare": ("hnm.entry:compare_main", "compare runs/sweeps: grouped table, tests, plots"),
    "data": ("hnm.entry:data_main", "dataset utilities: `hnm data check` (leakage report)"),
    "cache": ("hnm.commands.cache:main", "`hnm cache info` / `hnm cache clear`: the embedding cache"),
    "list": ("hnm.catalog:main", "every option of every config group: description, paper, knobs"),
}


def config_dir() -> str:
    """The config folder: ``hnm/conf`` inside an installed wheel, or the checkout's ``conf/``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise SystemExit("hnm: cannot find the config folder (conf/train.yaml); reinstall hnm")


def usage() -> str:
    lines = ["usage: hnm <subcommand> [overrides…] [-m] [--cfg job] [--help]", "", "subcommands:"]
    lines += [f"  {name:<8} {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    lines += ["", "examples:", "  hnm train +sampler=ngame",
              "  hnm train -m +sampler=ngame seed=1,2,3", "  hnm train experiment=smoke",
              "  hnm list sampler/ngame"]
    return "\n".join(lines)


def expand_resume(argv: list[str]) -> list[str]:
    """``hnm train resume=<run folder or its .ckpt>``: the run's own overrides (from its
    ``.hydra/overrides.yaml``) first, then the user's, and the run folder as the output folder,
    so the resumed run continues in place with the configuration it started with.

    The folder may come from elsewhere, so its overrides are values only
    (:func:`hnm.received.check_overrides`: no Hydra keys, no flags, only hnm's own
    ``_target_``s; a :class:`~hnm.errors.ConfigError` otherwise). Continuing in place, Hydra
    does not rewrite the run's ``.hydra/`` (``hydra.output_subdir=null``): it keeps recording
    how the run started, and a resume refused later leaves it as it was."""
    given = [a for a in argv if a.startswith("resume=")]
    if not given:
        return argv
    target = Path(given[-1].split("=", 1)[1]).expanduser()
    folder = target if target.is_dir() else target.parent.parent
    chosen = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    saved = folder / ".hydra" / "overrides.yaml"
    in_place = ["hydra.output_subdir=null"]
    if not saved.is_file() or chosen:  # a bare .ckpt, or the user chose the folder: their own
        same = bool(chosen) and Path(chosen[-1]).expanduser().resolve() == folder.resolve()
        return [*argv, *in_place] if same and folder.is_dir() else argv
    import yaml

    from hnm.errors import ConfigError
    from hnm.received import check_overrides

    try:
        old = yaml.safe_load(saved.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{saved}: cannot read the run's overrides ({first[:200]}); "
                          "expected the YAML list Hydra writes") from None
    old = check_overrides(old if old is not None else [], str(saved))
    keep = [o for o in old if not o.startswith(("resume=", "hydra.run.dir="))]
    mine = {a.split("=", 1)[0] for a in argv if "=" in a}
    keep = [o for o in keep if o.split("=", 1)[0] not in mine]
    return [*keep, *argv, f"hydra.run.dir={folder}", *in_place]


def _load(target: str) -> Callable[[], None]:
    import importlib

    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def main(argv: list[str] | None = None) -> None:
    try:
        _main(argv)
    except BrokenPipeError:  # `hnm train --help | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(141) from None  # what a shell reports for SIGPIPE


def _main(argv: list[str] | None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        from hnm import __version__

        print(f"hnm {__version__}")
        return
    sub = argv.pop(0)
    if sub not in SUBCOMMANDS:
        print(f"hnm: unknown subcommand {sub!r}; expected one of: {', '.join(SUBCOMMANDS)}\n",
              file=sys.stderr)
        print(usage(), file=sys.stderr)
        raise SystemExit(2)
    if sub == "list":  # no Hydra: it reads conf/ and the sources as they are
        from hnm.catalog import main as list_main

        list_main(argv)
        return
    if sub in ("train", "eval", "mine"):
        from hnm.catalog import canonical_overrides

        argv = canonical_overrides(sub, argv)  # +miner=X and miner=X alike
        _register_help_resolver()
    if sub == "train":
        from hnm.errors import HnmError

        try:
            argv = expand_resume(argv)
        except HnmError as err:
            print(f"hnm: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    if verbose(argv):
        os.environ["HNM_VERBOSE"] = "1"  # the commands keep third-party bars and INFO lines
    else:  # transformers' and the hub's loading/writing bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    sys.argv = [f"hnm {sub}", *argv]
    _run(SUBCOMMANDS[sub][0])


def env_verbose() -> bool:
    """``HNM_VERBOSE`` set to a true value (:func:`verbose` sets it for the command's process)."""
    return os.environ.get("HNM_VERBOSE", "").lower() not in ("", "0", "false", "no")


def verbose(argv: list[str]) -> bool:
    """Whether the user asked for the libraries' own output: ``hydra.verbose=…`` (any value
    but false) on the command line, or ``HNM_VERBOSE=1``. Otherwise the commands print their
    own lines only: no nested progress bars, advertisements or deprecation chatter."""
    if env_verbose():
        return True
    return any(a.startswith("hydra.verbose=")
               and a.split("=", 1)[1].lower() not in ("false", "null", "[]", "")
               for a in argv)


def _register_help_resolver() -> None:
    """``${hnm_help:COMMAND}`` in ``hydra.help.template`` (conf/hydra/default.yaml): the part of
    ``hnm COMMAND --help`` that depends on the command (:func:`hnm.catalog.help_text`)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("hnm_help"):
        from hnm.catalog import help_text

        OmegaConf.register_new_resolver("hnm_help", help_text)


def _run(target: str) -> None:
    """Run a subcommand; Hydra's own errors (an unknown option or key, an override it cannot
    parse, a run folder it cannot create) become one paragraph and exit status 2, as hnm's
    errors do. ``HYDRA_FULL_ERROR=1`` set by the user keeps Hydra's full report."""
    user_full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises its errors instead of printing them
    try:
        _load(target)()
    except Exception as err:  # noqa: BLE001 - re-raised unless it is the user's input
        from hnm.hydra_errors import hydra_message

        message = None if user_full else hydra_message(err)
        if message is None:
            raise
        print(f"hnm: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if user_full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full


if __name__ == "__main__":  # pragma: no cover
    main()
