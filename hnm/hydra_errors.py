"""Hydra's own errors (before hnm's code runs) as one paragraph for ``hnm`` to print.

Hydra reports an unknown option (``+sampler=nosuch``), an unknown key (``trainer.nosuch=1``),
an override it cannot parse, or an output folder it cannot create with its own text and exit
status 1. :func:`hydra_message` turns them into hnm's form: what was given, what is valid, and
exit status 2 (see :func:`hnm.cli.main`); None for anything else (a bug keeps its traceback).
:func:`user_message` does the same for an error raised while a command runs (hnm's own, a full
disk, a missing mandatory value), looking through Hydra's instantiate wrappers.
"""

from __future__ import annotations

import errno

from hnm.errors import HnmError

# a file-system failure that is the machine's or the user's, not a bug: reported in one
# paragraph (exit 2) wherever it happens in a run
DISK_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
               getattr(errno, "EDQUOT", errno.ENOSPC)}
# and, while Hydra creates the run folder, a path that cannot be a folder
RUN_DIR_ERRNOS = DISK_ERRNOS | {errno.ENOENT, errno.ENOTDIR, errno.EEXIST}


def hydra_message(err: BaseException) -> str | None:
    """The one-paragraph message for an error Hydra raised while composing the config or
    setting up the run folder; None when it is not one of those."""
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, MissingConfigException):
            return _missing_option(seen)
        if isinstance(seen, (ConfigAttributeError, ConfigKeyError)) and getattr(
                seen, "full_key", None):
            return _unknown_key(seen)
        if isinstance(seen, OverrideParseException):
            first = str(seen.message).splitlines()[0] if seen.message else "cannot parse it"
            return (f"the override {seen.override!r} is not valid: {first}. Write key=value "
                    "(quote values with spaces or brackets, e.g. 'key=[a,b]')")
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, OSError) and err.errno in RUN_DIR_ERRNOS:
        return os_message(err, "cannot create the run folder: ")
    if isinstance(err, (ConfigCompositionException, HydraException)):
        return " ".join(str(err).split())
    return None


def os_message(err: OSError, context: str = "", key: str = "hydra.run.dir") -> str:
    """A file-system failure: which file, what happened, and what to do (``key``: the setting
    that chooses where it is written; ``output`` for ``hnm mine``'s negatives file)."""
    where = err.filename or "a file of the run"
    why = err.strerror or type(err).__name__
    code = errno.errorcode.get(err.errno or 0, "")
    full = err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    what, value = ("the file", "PATH") if key == "output" else ("the run", "DIR")
    hint = (f"the disk is full: free some space, or write {what} elsewhere with {key}={value}"
            if full else f"choose a {'path' if key == 'output' else 'folder'} you can write to "
            f"with {key}={value}")
    return f"{context}{where}: {why}{f' ({code})' if code else ''}; {hint}"


def _missing_option(err: BaseException) -> str:
    missing = str(getattr(err, "missing_cfg_file", "") or "")
    options = list(getattr(err, "options", None) or [])
    group, _, name = missing.rpartition("/")
    if not options and group:  # an option of a list (+negatives=[gist,nosuch]): hnm's own
        from pathlib import Path

        from hnm.cli import config_dir

        options = sorted(p.stem for p in (Path(config_dir()) / group).glob("*.yaml"))
    if not options:
        return " ".join(str(err).split("Config search path:")[0].split())
    if not group:  # the primary config itself
        return f"no config named {name!r}; expected one of: {', '.join(options)}"
    return (f"{group}={name}: there is no option {name!r} in group {group!r}; valid choices: "
            f"{', '.join(options)}")


def _unknown_key(err: BaseException) -> str:
    full_key = str(err.full_key)  # type: ignore[attr-defined]
    parent = getattr(err, "parent_node", None)
    valid = [str(k) for k in parent.keys() if not str(k).startswith("_")] \
        if parent is not None and hasattr(parent, "keys") else []
    where, _, key = full_key.rpartition(".")
    scope = f"{where!r}" if where else "the config"
    listed = f"; valid keys of {scope}: {', '.join(valid)}" if valid else ""
    return f"{full_key}: there is no key {key!r} in {scope}{listed}. Check its spelling"


def user_message(err: BaseException) -> str | None:
    """The one-paragraph message of a user error, looking through Hydra's instantiate
    wrappers; None for a bug (which keeps its traceback)."""
    import re

    from omegaconf.errors import (
        GrammarParseError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
        MissingMandatoryValue,
    )

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, HnmError):
            return str(seen)
        if isinstance(seen, OSError) and seen.errno in DISK_ERRNOS:  # a full disk, …
            return os_message(seen)
        if type(seen).__name__ == "MisconfigurationException" and type(
                seen).__module__.startswith("lightning"):  # a trainer.* value Lightning refused
            return (f"the trainer settings are not valid: {' '.join(str(seen).split())} "
                    "(see trainer.* in the config)")
        if isinstance(seen, (MissingMandatoryValue, InterpolationToMissingValueError)):
            found = re.search(r"Missing mandatory value: ([\w.\[\]]+)", str(seen))
            key = found.group(1) if found else (getattr(seen, "full_key", None) or "a value")
            hint = (" (a folder with corpus.jsonl, queries.jsonl and qrels/)"
                    if key == "data.path" else "")
            return (f"{key} is required but was not given: pass {key}=…{hint} on the "
                    "command line")
        if isinstance(seen, (InterpolationResolutionError, GrammarParseError)):
            key = getattr(seen, "full_key", None) or "a value"
            first = str(seen).strip().splitlines()[0] if str(seen).strip() else ""
            return (f"{key}: cannot resolve its interpolation ({first}); check the ${{…}} "
                    "reference")
        seen = seen.__cause__ or seen.__context__
    return None
