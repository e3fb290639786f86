"""Check a config node against its ``_target_``'s signature before instantiating it.

Hydra's ``instantiate`` passes whatever the YAML and the command line hold: a typo in a key
(``+loss.nosuch=1``) ends in ``TypeError: unexpected keyword argument`` and a value of the wrong
type (``loss.temperature=abc``) in whatever the constructor does with it, both with a
traceback. :func:`check_node` refuses both first, as a :class:`~hnm.errors.ConfigError` that
names the full config key, the value found and what was expected (read from the type hints:
numbers, integers, booleans, strings, ``Literal`` choices, lists, ``None``); anything it
cannot judge (other classes, callables) it leaves to the constructor.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig

from hnm.errors import ConfigError, HnmError

_CONTAINERS = (list, tuple, ListConfig)


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)`` after :func:`check_node` (``key``: where the
    node sits in the config, e.g. ``loss`` or ``negatives.gist``)."""
    from hydra.utils import instantiate as hydra_instantiate

    check_node(node, key, given=set(kwargs))
    try:
        return hydra_instantiate(node, **kwargs)
    except Exception as err:  # Hydra wraps what the constructor raised: show the user's error
        seen: BaseException | None = err
        while seen is not None and not isinstance(seen, HnmError):
            seen = seen.__cause__ or seen.__context__
        if seen is None:
            raise
        raise _renamed(seen, node, key) from None


def _renamed(err: HnmError, node: Any, key: str) -> HnmError:
    """``err`` naming where the encoder that raised it sits: an encoder factory names its
    knobs ``encoder.…``, but an encoder nested in another node (GIST's guide, a loss's
    teacher) is set at that node's key (``negatives.gist.guide.name=…``)."""
    text = str(err)
    if key == "encoder" or not text.startswith("encoder.") or not isinstance(node, DictConfig):
        return err
    found = []
    for k in node:
        try:
            child = node[k]
        except Exception:  # noqa: BLE001 - a value that does not resolve is no encoder
            continue
        if isinstance(child, DictConfig) and str(child.get("_target_", "")).startswith(
                "hnm.encoders."):
            found.append(f"{key}.{k!s}")
    if len(found) != 1:
        return err
    return type(err)(found[0] + text[len("encoder"):])


def check_node(node: Any, key: str, given: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuse unknown keys and ill-typed values in ``node`` and in every node with a
    ``_target_`` below it. ``given``: arguments the code passes itself (not checked)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            target = _locate(node["_target_"])
            if target is not None:
                check_kwargs(key, {str(k): node[k] for k in node if not str(k).startswith("_")
                                   and not isinstance(node._get_node(k), DictConfig)},
                             target, known={str(k) for k in node} | set(given))
        for k in node:
            child: Any = node._get_node(k)
            if isinstance(child, (DictConfig, ListConfig)):
                check_node(child, f"{key}.{str(k)}")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            item: Any = node._get_node(i)
            if isinstance(item, (DictConfig, ListConfig)):
                check_node(item, f"{key}[{i}]")


def check_kwargs(key: str, values: Mapping[str, Any], target: Any,
                 known: set[str] | None = None) -> None:
    """Refuse keyword arguments ``target`` does not take, and values its type hints exclude.

    ``values``: the arguments to check (plain values); ``known``: every key the node holds
    (nested nodes included) for the unknown-key check, by default ``values``' keys."""
    params, hints, open_kwargs = signature(target)
    if not open_kwargs:
        unknown = sorted(k for k in (known if known is not None else values)
                         if not str(k).startswith("_") and k not in params)
        if unknown:
            raise ConfigError(
                f"{key}.{unknown[0]} is not a setting of {key} ({_name(target)}); valid "
                f"settings: {', '.join(params) or 'none'}. Remove it, or check its spelling"
            )
    for name, value in values.items():
        hint = hints.get(name)
        if hint is None or _fits(value, hint) is not False:
            continue
        raise ConfigError(f"{key}.{name}={value!r} is not valid; expected {_expected(hint)}")


def signature(target: Any) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    """``(parameters, type hints, takes any keyword)`` of a function or of a class's
    constructor, following ``**kwargs`` up the class's bases (a miner's shared knobs)."""
    if inspect.isclass(target):
        funcs = [cls.__dict__["__init__"] for cls in target.__mro__
                 if cls is not object and "__init__" in cls.__dict__]
    else:
        funcs = [target]
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for fn in funcs:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return params, hints, True
        try:
            fn_hints = typing.get_type_hints(fn)
        except Exception:  # noqa: BLE001 - hints that do not resolve are not checked
            fn_hints = {}
        var_kw = False
        for i, (name, p) in enumerate(sig.parameters.items()):
            if p.kind is p.VAR_KEYWORD:
                var_kw = True
            elif p.kind is not p.VAR_POSITIONAL and not (i == 0 and name in ("self", "cls")):
                params.setdefault(name, p)
                if name in fn_hints:
                    hints.setdefault(name, fn_hints[name])
        if not var_kw:
            return params, hints, False
    return params, hints, True


def _fits(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` matches ``hint``; None where the hint is not one this module judges."""
    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return None
    if origin is typing.Union or isinstance(hint, types.UnionType):
        verdicts = [_fits(value, arm) for arm in typing.get_args(hint)]
        return True if True in verdicts else (None if None in verdicts else False)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return value is not None and not isinstance(value, (*_CONTAINERS, DictConfig, dict))
    container = origin or hint
    if container in (list, tuple, Sequence, typing.Sequence):
        return isinstance(value, _CONTAINERS)
    if container in (dict, Mapping, typing.Mapping):
        return isinstance(value, (dict, DictConfig))
    return None


def _expected(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        arms = [_expected(a) for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)
        return " or ".join(arms + (["null"] if nullable else []))
    if origin is typing.Literal:
        return "one of: " + ", ".join(map(str, typing.get_args(hint)))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(hint, "a list" if (origin or hint) in (
                list, tuple, Sequence) else "a mapping" if (origin or hint) in (
                dict, Mapping) else getattr(hint, "__name__", str(hint)))


def _locate(path: Any) -> Any:
    """The object a ``_target_`` names, or None when it does not import (``instantiate``
    then reports it)."""
    from hydra.utils import get_object

    try:
        return get_object(str(path))
    except Exception:  # noqa: BLE001 - instantiate reports a missing target itself
        return None


def _name(target: Any) -> str:
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', target)}"
