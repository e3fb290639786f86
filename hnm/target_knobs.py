"""The knobs of a node with an hnm ``_target_``, judged from its constructor's source.

:func:`check_target_node` refuses an unknown key (when the constructor takes no ``**kwargs``), a
value its type hint excludes (as :func:`hnm.config_check._fits` judges the imported hints: int,
float, bool, str, ``Literal``, lists, mappings, ``None``; anything else is not judged) and a
value outside its ``check_range``/``check_choice`` bounds, all read by
:func:`hnm.static_signature.knobs_of` without importing the constructor.
"""

from __future__ import annotations

import ast
from typing import Any

from omegaconf import DictConfig, ListConfig

from hnm.errors import ConfigError, check_choice, check_range
from hnm.static_signature import knobs_of

INT, NUM, BOOL, STR, NULL = "an integer", "a number", "true or false", "a string", "null"


def kind_of(value: Any) -> str:
    """What a config value is, in the words of the messages (:data:`INT`, …)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return NUM
    if isinstance(value, str):
        return STR
    return "a list" if isinstance(value, (list, tuple, ListConfig)) else "a mapping"


def check_target_node(node: DictConfig, key: str, target: str, bounds: bool = True) -> None:
    """``node``'s plain values against ``target``'s parameters and hints, and with ``bounds``
    also against its ``check_range``/``check_choice`` bounds."""
    knobs = knobs_of(target)
    if knobs is None:
        return
    names = [str(k) for k in node.keys() if not str(k).startswith("_")]
    if not knobs.open:
        unknown = sorted(n for n in names if n not in knobs.params)
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]} is not a setting of {key} ({target}); valid "
                              f"settings: {', '.join(knobs.params) or 'none'}. Remove it, or "
                              "check its spelling")
    for name in names:
        if isinstance(node._get_node(name), DictConfig):
            continue
        try:
            value = node[name]
        except Exception:  # noqa: BLE001 - missing or unresolvable: reported where used
            continue
        if isinstance(value, DictConfig):
            continue
        full = f"{key}.{name}"
        hint = knobs.params.get(name)
        verdict = _fits(value, hint) if hint is not None else None
        if verdict is False and hint is not None:
            raise ConfigError(f"{full}={value!r} is not valid; expected {_expected(hint)}")
        if bounds and name in knobs.choices:
            check_choice(full, value, knobs.choices[name])
        if bounds and name in knobs.ranges and value is not None:
            low, high, low_open, high_open = knobs.ranges[name]
            check_range(full, value, low, high, low_open=low_open, high_open=high_open)


def _arms(hint: ast.expr) -> list[ast.expr] | None:
    if isinstance(hint, ast.Constant) and isinstance(hint.value, str):
        try:
            hint = ast.parse(hint.value, mode="eval").body
        except SyntaxError:
            return None
    if isinstance(hint, ast.BinOp) and isinstance(hint.op, ast.BitOr):
        left, right = _arms(hint.left), _arms(hint.right)
        return None if left is None or right is None else left + right
    if isinstance(hint, ast.Subscript) and isinstance(hint.value, ast.Name) \
            and hint.value.id == "Optional":
        return [hint.slice, ast.Constant(None)]
    return [hint]


def _fits_one(value: Any, hint: ast.expr) -> bool | None:
    """As :func:`hnm.config_check._fits` for one arm: None where it cannot judge."""
    name = hint.id if isinstance(hint, ast.Name) else None
    if isinstance(hint, ast.Constant) and hint.value is None:
        return value is None
    if isinstance(hint, ast.Subscript) and isinstance(hint.value, ast.Name):
        if hint.value.id == "Literal":
            try:
                return value in ast.literal_eval(hint.slice) if isinstance(
                    hint.slice, ast.Tuple) else value == ast.literal_eval(hint.slice)
            except ValueError:
                return None
        name = hint.value.id
    if name in ("list", "tuple", "Sequence"):
        return isinstance(value, (list, tuple, ListConfig))
    if name in ("dict", "Mapping"):
        return isinstance(value, (dict, DictConfig))
    kind = {"int": INT, "float": NUM, "bool": BOOL, "str": STR}.get(name or "")
    if kind is None:
        return None
    if kind == STR:
        return value is not None and not isinstance(value, (list, tuple, ListConfig,
                                                            DictConfig, dict))
    return kind_of(value) == kind or (kind == NUM and kind_of(value) == INT)


def _fits(value: Any, hint: ast.expr) -> bool | None:
    arms = _arms(hint)
    if arms is None:
        return None
    verdicts = [_fits_one(value, arm) for arm in arms]
    return True if True in verdicts else (None if None in verdicts else False)


def _expected(hint: ast.expr) -> str:
    words = []
    for arm in _arms(hint) or []:
        if isinstance(arm, ast.Subscript) and isinstance(arm.value, ast.Name) \
                and arm.value.id == "Literal":
            try:
                values = ast.literal_eval(arm.slice)
            except ValueError:
                values = ast.unparse(arm.slice)
            values = values if isinstance(values, tuple) else (values,)
            words.append("one of: " + ", ".join(map(str, values)))
        elif isinstance(arm, ast.Constant) and arm.value is None:
            words.append(NULL)
        else:
            name = arm.value.id if isinstance(arm, ast.Subscript) and isinstance(
                arm.value, ast.Name) else getattr(arm, "id", "")
            words.append({"int": INT, "float": NUM, "bool": BOOL, "str": STR, "list": "a list",
                          "tuple": "a list", "Sequence": "a list"}.get(name, name))
    return " or ".join(w for w in words if w) or "another value"
