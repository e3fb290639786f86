"""What hnm takes from a run folder: values, never code.

``hnm eval model=RUN`` reads a run folder's ``config.yaml`` (its ``data``, ``eval`` and
``poison`` sections and its ``seed``) and ``hnm train resume=RUN`` its ``.hydra/overrides.yaml``.
Such a folder may come from anyone (a colleague's sweep, a paper's artifacts), and a
``_target_`` is code: Hydra imports and calls what it names. So what comes from a folder is
checked before anything is instantiated:

- every ``_target_`` (in any section, nested or not) must be a plain name that resolves to a
  class or function *defined* in the ``hnm`` package (the resolved object's ``__module__`` is
  checked, so ``hnm.encoders.factory.torch.load`` is refused: it is ``torch.load``) and that one
  of hnm's own configs (``conf/``) names; anything else is refused, naming the key;
- no setting may turn on a model's own code (``trust_remote_code``);
- an override may not configure Hydra itself (``hydra.*``, ``hydra/…``, a package ``@hydra``)
  nor be a command-line flag (``--experimental-rerun`` would unpickle a file).

Every refusal is a :class:`~hnm.errors.ConfigError` (exit 2) naming the file and the key.
"""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from hnm.errors import ConfigError

_ADVICE = ("a run folder may only name hnm's own classes; if you trust this code, pass the "
           "setting on the command line yourself")


@functools.lru_cache(maxsize=1)
def shipped_targets() -> frozenset[str]:
    """The ``_target_`` names of hnm's own objects in hnm's configs (``conf/**/*.yaml``)."""
    import yaml

    from hnm.cli import config_dir

    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "_target_" and isinstance(value, str) and value.startswith("hnm."):
                    found.add(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(Path(config_dir()).rglob("*.yaml")):
        try:
            walk(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):  # pragma: no cover - the shipped configs parse
            continue
    return frozenset(found)


def check_target(value: Any, key: str, where: str) -> None:
    """Refuse ``value`` (the ``_target_`` at ``key``, read from ``where``) unless it is one
    of hnm's own classes or functions named by hnm's configs."""
    def refuse(why: str) -> ConfigError:
        return ConfigError(f"{where}: {key}={value!r} {why}; {_ADVICE}")

    if not isinstance(value, str) or not value.startswith("hnm."):
        raise refuse("names code outside hnm")
    if any(not part.isidentifier() or part.startswith("_") for part in value.split(".")):
        raise refuse("is not a public name of hnm")
    from hydra.utils import get_object

    try:  # only modules of the hnm package are imported while resolving "hnm.…"
        obj = get_object(value)
    except Exception:  # noqa: BLE001 - whatever went wrong, it names nothing of hnm's
        raise refuse("names nothing in hnm") from None
    module = getattr(obj, "__module__", None) or ""
    if not (inspect.isclass(obj) or inspect.isfunction(obj)) or not (
            module == "hnm" or module.startswith("hnm.")):
        name = f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}".lstrip(".")
        raise refuse(f"resolves to {name}, which is not defined in hnm")
    if value not in shipped_targets():
        raise refuse("is not one of the classes hnm's configs name")


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes", "on")


# resolvers an interpolation from a run folder may call: they read a value, they make no node
# (``oc.create``/``oc.decode`` could make one with a ``_target_`` after the check)
_SAFE_RESOLVERS = ("oc.select", "oc.env")
_RESOLVER = re.compile(r"(?<!\\)\$\{\s*([^}:\s]+)\s*:")


def _check_leaf(name: str, raw: Any, key: str, where: str) -> None:
    """One value (as written, not resolved) at ``key``."""
    text = raw if isinstance(raw, str) else ""
    if name == "_target_":
        if "${" in text:
            raise ConfigError(f"{where}: {key}={raw!r} is an interpolation; {_ADVICE}")
        check_target(raw, key, where)
    elif name == "trust_remote_code" and (_truthy(raw) or "${" in text):
        raise ConfigError(f"{where}: {key}={raw!r} would run the Python code a model ships; "
                          f"{_ADVICE}")
    for resolver in _RESOLVER.findall(text):
        if resolver not in _SAFE_RESOLVERS:
            raise ConfigError(f"{where}: {key}={raw!r} calls the resolver {resolver!r}; from a "
                              f"run folder only references and {', '.join(_SAFE_RESOLVERS)} "
                              "are read")


def _raw(node: Any) -> Any:
    """A config node's value as written (an interpolation unresolved); a plain value as is."""
    value = getattr(node, "_value", None)
    return value() if callable(value) else node


def check_values(node: Any, key: str, where: str) -> None:
    """Walk ``node`` (a config node, dict or list read from ``where``, at ``key``) as written,
    resolving nothing: every ``_target_`` through :func:`check_target`, no interpolation that
    could make a node, and no ``trust_remote_code`` turned on."""
    if isinstance(node, (DictConfig, dict)):
        items = ([(str(k), node._get_node(k)) for k in node.keys()] if isinstance(node, DictConfig)
                 else [(str(k), v) for k, v in node.items()])
        for name, child in items:
            sub = f"{key}.{name}" if key else name
            if isinstance(child, (DictConfig, ListConfig, dict, list)):
                if name in ("_target_", "trust_remote_code"):
                    raise ConfigError(f"{where}: {sub} must be a plain value; {_ADVICE}")
                check_values(child, sub, where)
            else:
                _check_leaf(name, _raw(child), sub, where)
    elif isinstance(node, (ListConfig, list)):
        for i in range(len(node)):
            item = node._get_node(i) if isinstance(node, ListConfig) else node[i]
            if isinstance(item, (DictConfig, ListConfig, dict, list)):
                check_values(item, f"{key}[{i}]", where)
            else:
                _check_leaf("", _raw(item), f"{key}[{i}]", where)
    elif node is not None:
        _check_leaf(key.rsplit(".", 1)[-1], _raw(node),
                    key, where)


def check_sections(cfg: DictConfig, sections: tuple[str, ...], where: str) -> None:
    """:func:`check_values` on each of ``cfg``'s ``sections`` that it has."""
    for section in sections:
        if section in cfg and cfg._get_node(section) is not None:
            check_values(cfg._get_node(section), section, where)


def check_overrides(entries: Any, where: str) -> list[str]:
    """The overrides of a run folder (its ``.hydra/overrides.yaml``, ``where``) as a list of
    strings, each one checked: a ``key=value`` Hydra parses, not a flag, nothing of Hydra's
    own, and its value through :func:`check_values`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of overrides, got "
                          f"{type(entries).__name__}")
    parser = OverridesParser.create()
    out = []
    for number, entry in enumerate(entries, start=1):
        at = f"{where} entry {number}"
        if not isinstance(entry, str):
            raise ConfigError(f"{at}: {entry!r} is not an override (key=value)")
        if entry.lstrip().startswith("-"):
            raise ConfigError(f"{at}: {entry!r} is a command-line flag, not an override; "
                              "a run folder's overrides are key=value only")
        try:
            override = parser.parse_override(entry)
        except Exception as err:  # noqa: BLE001 - Hydra's parse errors vary
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"{at}: {entry!r} is not an override Hydra can read "
                              f"({first})") from None
        key = override.key_or_group
        package = override.package or ""
        if key.split(".")[0].split("/")[0] == "hydra" or package.split(".")[0] == "hydra":
            raise ConfigError(f"{at}: {entry!r} configures Hydra itself (hydra.*, hydra/…); "
                              "hnm never applies that from a run folder")
        check_values(override.value(), key, at)
        out.append(entry)
    return out
