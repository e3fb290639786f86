"""A ``_target_``'s settings, types and ranges, read from hnm's source without importing it.

Constructors check their knobs (``check_range``/``check_choice``, type hints), but importing
them pulls in torch, Lightning and transformers (seconds). :func:`knobs_of` reads the same
facts from the source file instead (milliseconds), so :mod:`hnm.knobs` can refuse a bad value
before anything heavy is imported or any run folder is made:

- the parameters of the function, or of the class's ``__init__`` (following ``**kwargs`` to
  the base classes, as :func:`hnm.config_check.signature` does), with their annotations;
- the ``check_range(key, param, low, high, low_open=…, high_open=…)`` and
  ``check_choice(key, param, CHOICES)`` calls at the top of the body (or under
  ``if param is not None:``) whose bounds and choices are literals or module constants.

Anything it cannot read (a computed bound, a check inside a loop) it leaves to the
constructor, which still runs; it never refuses more than the constructor would.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent  # the hnm package


@dataclass
class Knobs:
    """What :func:`knobs_of` found: ``params`` (name -> annotation AST or None), ``open``
    (takes any keyword), ``ranges`` (name -> (low, high, low_open, high_open)), ``choices``
    (name -> allowed values)."""

    params: dict[str, ast.expr | None] = field(default_factory=dict)
    open: bool = False
    ranges: dict[str, tuple[Any, Any, bool, bool]] = field(default_factory=dict)
    choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)


@functools.cache
def _parse(module: str) -> ast.Module | None:
    parts = module.split(".")
    if parts[0] != "hnm":
        return None
    base = ROOT.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            try:
                return ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                return None
    return None


def _find(module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | None:
    """``(module, node)`` of the top-level definition or constant ``name`` of ``module``,
    following ``from X import name`` (re-exports)."""
    tree = _parse(module)
    if tree is None or depth > 4:
        return None
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node.target.id == name and node.value is not None:
            return module, node.value
        if isinstance(node, ast.ImportFrom) and any(a.name == name and (a.asname or a.name)
                                                    == name for a in node.names):
            source = node.module or ""
            if node.level:
                pkg = module.split(".")
                keep = pkg[:len(pkg) - node.level + (1 if _is_package(module) else 0)]
                source = ".".join([*keep, source] if source else keep)
            return _find(source, name, depth + 1)
    return None


def _is_package(module: str) -> bool:
    return ROOT.joinpath(*module.split(".")[1:], "__init__.py").is_file()


def _literal(module: str, node: ast.AST) -> Any:
    """A literal (number, None, string, tuple/list of them, or a module constant naming one);
    raises ValueError otherwise."""
    if isinstance(node, ast.Name):
        found = _find(module, node.id)
        if found is None:
            raise ValueError(node.id)
        return _literal(*found)
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(module, e) for e in node.elts)
    return ast.literal_eval(node)


def _alias(module: str, hint: ast.expr | None) -> ast.expr | None:
    """A type alias of hnm (``IndexKind = Literal[…]``) replaced by what it names."""
    if isinstance(hint, ast.Constant) and isinstance(hint.value, str):
        try:
            hint = ast.parse(hint.value, mode="eval").body
        except SyntaxError:
            return hint
    if isinstance(hint, ast.Name) and hint.id not in ("int", "float", "bool", "str", "Any"):
        found = _find(module, hint.id)
        if found is not None and isinstance(found[1], ast.expr):
            return _alias(*found)  # type: ignore[arg-type]
    if isinstance(hint, ast.BinOp) and isinstance(hint.op, ast.BitOr):
        return ast.BinOp(_alias(module, hint.left) or hint.left, ast.BitOr(),
                         _alias(module, hint.right) or hint.right)
    return hint


def _calls(body: list[ast.stmt], params: set[str]) -> list[tuple[ast.Call, str]]:
    """``(call, param)`` for each statement-level check call on a parameter."""
    out = []
    for stmt in body:
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare) \
                and isinstance(stmt.test.left, ast.Name) \
                and isinstance(stmt.test.ops[0], ast.IsNot) and not stmt.orelse:
            out += [c for c in _calls(stmt.body, params) if c[1] == stmt.test.left.id]
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            fn = call.func.id if isinstance(call.func, ast.Name) else None
            if fn in ("check_range", "check_choice") and len(call.args) >= 3 \
                    and isinstance(call.args[1], ast.Name) and call.args[1].id in params:
                out.append((call, call.args[1].id))
    return out


def _read(module: str, fn: ast.FunctionDef, knobs: Knobs, skip_first: bool) -> bool:
    """Add ``fn``'s parameters and checks to ``knobs``; True when it takes ``**kwargs``."""
    args = [*fn.args.posonlyargs, *fn.args.args][1 if skip_first else 0:] + fn.args.kwonlyargs
    for a in args:
        knobs.params.setdefault(a.arg, _alias(module, a.annotation))
    for call, name in _calls(fn.body, set(knobs.params)):
        try:
            if call.func.id == "check_range":  # type: ignore[attr-defined]
                values = [_literal(module, a) for a in call.args[2:4]]
                low, high = (values + [None, None])[:2]
                flags = {k.arg: _literal(module, k.value) for k in call.keywords}
                rule = (low, high, bool(flags.get("low_open")), bool(flags.get("high_open")))
                knobs.ranges.setdefault(name, rule)
            else:
                knobs.choices.setdefault(name, tuple(_literal(module, call.args[2])))
        except (ValueError, TypeError, SyntaxError):
            continue  # a bound or choice it cannot read: left to the constructor
    return fn.args.kwarg is not None


@functools.cache
def knobs_of(target: str) -> Knobs | None:
    """The knobs of ``target`` (``hnm.pkg.module.Name``), or None when its source cannot be
    read this way."""
    module, _, name = target.rpartition(".")
    found = _find(module, name)
    if found is None:
        return None
    knobs = Knobs()
    where, node = found
    for _ in range(8):  # a function, or a class and its bases while they take **kwargs
        if isinstance(node, ast.FunctionDef):
            knobs.open = _read(where, node, knobs, skip_first=False)
            return knobs
        if not isinstance(node, ast.ClassDef):
            return None
        init = next((s for s in node.body if isinstance(s, ast.FunctionDef)
                     and s.name == "__init__"), None)
        if init is not None and not _read(where, init, knobs, skip_first=True):
            return knobs
        base = next((b.id for b in node.bases if isinstance(b, ast.Name)), None)
        nxt = _find(where, base) if base else None
        if nxt is None or not isinstance(nxt[1], ast.ClassDef):
            knobs.open = True
            return knobs
        where, node = nxt
    return None


@functools.cache
def docstrings_of(target: str) -> tuple[str, ...]:
    """The docstrings of ``target`` (``hnm.pkg.module.Name``), nearest first: a function's,
    or a class's and those of the base classes its constructor passes ``**kwargs`` to (the
    walk of :func:`knobs_of`), so that a knob a base class documents is found there. Empty
    when the source cannot be read this way."""
    module, _, name = target.rpartition(".")
    found = _find(module, name)
    out: list[str] = []
    for _ in range(8):
        if found is None:
            break
        where, node = found
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            break
        doc = ast.get_docstring(node)
        if doc:
            out.append(doc)
        if isinstance(node, ast.FunctionDef):
            break
        init = next((s for s in node.body if isinstance(s, ast.FunctionDef)
                     and s.name == "__init__"), None)
        if init is not None and init.args.kwarg is None:
            break
        base = next((b.id for b in node.bases if isinstance(b, ast.Name)), None)
        found = _find(where, base) if base else None
    return tuple(out)
