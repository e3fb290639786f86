"""The state of a run's parts as plain values, for checkpoints loaded with ``weights_only=True``.

One mechanism persists every part: the :class:`~hnm.types.Stateful` protocol
(``state_dict``/``load_state_dict``), which ``hnm train`` calls on each part of the run
(:class:`hnm.parts.RunParts`), with the weights of the models a part declared left to
Lightning's checkpoint. hnm's parts (batch samplers, miners, in-batch strategies, losses) keep
what shapes the rest of the run in their attributes: clusters, this epoch's random batches,
mined pools, refresh schedules, queues, loss histories, effect counters, generators; they
inherit both methods from :class:`PartState`, which turns the attributes into plain values
(numbers, strings, tensors, lists, tuples, dicts) with :func:`capture` and sets them back
with :func:`restore`, so a part does not need code of its own to be resumed.

What is captured, attribute by attribute:

- numbers, strings, ``None``, tensors (cloned), numpy arrays (as tensors, or lists for string
  and object arrays), and lists, tuples, sets and dicts of these;
- numpy and Python random generators (their state), torch generators (their state);
- an ``nn.Module`` the part owns (a momentum or key encoder, AR2's ranker) by its state dict,
  unless it is part of the training module, whose weights the checkpoint holds already;
- an object of hnm's own classes (a pool of mined negatives, a filter's settings) by its
  attributes, recursively, with its class name (only classes under ``hnm.`` are rebuilt).

A part names in ``not_state`` the attributes it holds but that are not its state: the models
it declared (the training module's, in Lightning's checkpoint) and frozen models given by the
configuration. Everything else that is not plain (the training data, views of training, embed
functions, threads, locks; any object whose class sets ``persistent = False``) is left out: it
is rebuilt from the configuration, not restored. Names left out are listed in ``__skipped__``,
which tests use to see that nothing that matters was dropped.
"""

from __future__ import annotations

import importlib
import random
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import torch

_PLAIN = (type(None), bool, int, float, str, bytes)


class _NoTarget(Exception):
    """A saved model whose part has not built it yet: the attribute is left as it is."""


# the numpy bit generators a checkpoint may name (a name is looked up in numpy.random)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_SKIP = object()
# what every nn.Module keeps (hooks, registries, its mode): never a part's own state
_MODULE_INTERNALS = set(vars(torch.nn.Module())) | {"_modules", "_parameters", "_buffers"}
_MAX_DEPTH = 6


def held_elsewhere(modules: Iterable[torch.nn.Module], *objects: Any) -> set[int]:
    """Ids for :func:`capture`'s ``skip``: every submodule, parameter and buffer of
    ``modules`` (the training module: its weights are in the checkpoint) and ``objects``
    (the data, the trainer, the module itself: rebuilt, not restored)."""
    out = {id(o) for o in objects if o is not None}
    for root in modules:
        out |= {id(m) for m in root.modules()}
        out |= {id(t) for t in (*root.parameters(), *root.buffers())}
    return out


def _encode(value: Any, skip: set[int], depth: int, refs: dict[int, str]) -> Any:
    """``value`` as plain values, or ``_SKIP`` when it is not state."""
    if isinstance(value, _PLAIN):
        return value
    if id(value) in refs:  # one of the run's own objects: restored as a reference to it
        return {"__ref__": refs[id(value)]}
    if depth > _MAX_DEPTH or id(value) in skip or getattr(type(value), "persistent", True) is False:
        return _SKIP
    if isinstance(value, torch.nn.Parameter) or (isinstance(value, torch.Tensor)
                                                  and id(value) in skip):
        return _SKIP  # the module's own weights: in the checkpoint already
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().clone()}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biufc":
            return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value).copy()),
                    "dtype": str(value.dtype)}
        return {"__ndarray_list__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.random.Generator):
        return {"__np_generator__": value.bit_generator.state,
                "bit_generator": type(value.bit_generator).__name__}
    if isinstance(value, np.random.RandomState):
        return {"__np_randomstate__": _encode(value.get_state(), skip, depth + 1, refs)}
    if isinstance(value, random.Random):
        return {"__py_random__": value.getstate()}
    if isinstance(value, torch.Generator):
        return {"__torch_generator__": value.get_state()}
    if isinstance(value, torch.nn.Module):
        if id(value) in skip:
            return _SKIP
        return {"__module_state__": {k: v.detach().cpu().clone()
                                     for k, v in value.state_dict().items()},
                "training": value.training}
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        items = [_encode(v, skip, depth + 1, refs) for v in value]
        if any(i is _SKIP for i in items):
            return _SKIP
        if isinstance(value, (set, frozenset)):
            return {"__set__": items}
        if isinstance(value, deque):
            return {"__deque__": items, "maxlen": value.maxlen}
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (*_PLAIN, tuple)):
                return _SKIP
            enc = _encode(v, skip, depth + 1, refs)
            if enc is _SKIP:
                return _SKIP
            out[k] = enc
        return {"__dict__": out}
    if type(value).__module__.startswith("hnm.") and hasattr(value, "__dict__"):
        return {"__object__": f"{type(value).__module__}:{type(value).__qualname__}",
                "attrs": capture(value, skip, depth + 1, refs=refs)}
    return _SKIP


def capture(part: Any, skip: set[int] | None = None, depth: int = 0,
            exclude: Iterable[str] = (), refs: dict[int, str] | None = None) -> dict[str, Any]:
    """The plain state of ``part`` (see the module's docstring); ``skip``: ids of objects the
    checkpoint holds elsewhere or that are rebuilt from the configuration (the training
    module's weights, the data); ``exclude``: attribute names a part handles itself;
    ``refs``: id -> name of the run's own objects (the data, the training module) that parts
    refer to, kept as references and set back by :func:`restore` from its ``objects``."""
    skip = set() if skip is None else skip
    refs = {} if refs is None else refs
    exclude = set(exclude)
    names = {k: v for k, v in (vars(part) if hasattr(part, "__dict__") else {}).items()
             if k not in exclude}
    out: dict[str, Any] = {}
    skipped = []
    internals = _MODULE_INTERNALS if isinstance(part, torch.nn.Module) else set()
    for name, value in names.items():
        if name in internals or name.startswith("__"):
            continue
        enc = _encode(value, skip, depth, refs)
        if enc is _SKIP:
            skipped.append(name)
        else:
            out[name] = enc
    out["__skipped__"] = sorted(skipped)
    return out


def _decode(value: Any, current: Any, objects: dict[str, Any]) -> Any:
    if isinstance(value, list):
        old = current if isinstance(current, list) and len(current) == len(value) else None
        return [_decode(v, None if old is None else old[i], objects)
                for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_decode(v, None, objects) for v in value)
    if not isinstance(value, dict):
        return value
    if "__ref__" in value:
        if value["__ref__"] not in objects:
            raise ValueError(f"a reference to the run's {value['__ref__']!r}, which is unknown")
        return objects[value["__ref__"]]
    if "__tensor__" in value:
        return value["__tensor__"].clone()
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().astype(value["dtype"], copy=True)
    if "__ndarray_list__" in value:
        return np.array(value["__ndarray_list__"], dtype=value["dtype"])
    if "__np_generator__" in value:
        if value["bit_generator"] not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {value['bit_generator']!r}")
        gen = current if isinstance(current, np.random.Generator) else np.random.Generator(
            getattr(np.random, value["bit_generator"])())
        gen.bit_generator.state = value["__np_generator__"]
        return gen
    if "__np_randomstate__" in value:
        rs = current if isinstance(current, np.random.RandomState) else np.random.RandomState()
        rs.set_state(_decode(value["__np_randomstate__"], None, objects))
        return rs
    if "__py_random__" in value:
        rnd = current if isinstance(current, random.Random) else random.Random()
        rnd.setstate(value["__py_random__"])
        return rnd
    if "__torch_generator__" in value:
        gen = current if isinstance(current, torch.Generator) else torch.Generator()
        gen.set_state(value["__torch_generator__"])
        return gen
    if "__module_state__" in value:
        if not isinstance(current, torch.nn.Module):
            raise _NoTarget  # not built by its part (yet)
        current.load_state_dict(value["__module_state__"])
        current.train(bool(value.get("training", False)))
        return current
    if "__deque__" in value:
        return deque((_decode(v, None, objects) for v in value["__deque__"]),
                     maxlen=value["maxlen"])
    if "__set__" in value:
        return {_decode(v, None, objects) for v in value["__set__"]}
    if "__dict__" in value:
        old = current if isinstance(current, dict) else {}
        return {k: _decode(v, old.get(k), objects) for k, v in value["__dict__"].items()}
    if "__object__" in value:
        obj = current
        mod, qual = value["__object__"].split(":")
        if obj is None or f"{type(obj).__module__}:{type(obj).__qualname__}" != value["__object__"]:
            cls: Any = _own_class(mod, qual)
            obj = cls.__new__(cls)
        restore(obj, value["attrs"], objects)
        return obj
    return value


def _own_class(mod: str, qual: str) -> type:
    """The class ``mod:qual`` a checkpoint names, only when hnm defines it (the resolved
    class's own module is checked, not the name: ``hnm.x:torch.nn.Module`` is refused)."""
    if not (mod == "hnm" or mod.startswith("hnm.")) or not all(
            p.isidentifier() for p in [*mod.split("."), *qual.split(".")]):
        raise ValueError(f"refusing to rebuild {mod}:{qual}: not hnm's own")
    cls: Any = importlib.import_module(mod)
    for name in qual.split("."):
        cls = getattr(cls, name, None)
    where = getattr(cls, "__module__", "") or ""
    if not isinstance(cls, type) or not (where == "hnm" or where.startswith("hnm.")):
        raise ValueError(f"refusing to rebuild {mod}:{qual}: not a class defined in hnm")
    return cls


def check_names(value: Any) -> None:
    """Refuse (``ValueError``) a captured state that names a class :func:`restore` would not
    rebuild, or an unknown numpy generator: checked before a resume writes anything."""
    if isinstance(value, dict):
        if "__object__" in value:
            _own_class(*str(value["__object__"]).partition(":")[::2])
        if "__np_generator__" in value and value.get("bit_generator") not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {value.get('bit_generator')!r}")
        for item in value.values():
            check_names(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_names(item)


def restore(part: Any, state: dict[str, Any], objects: dict[str, Any] | None = None) -> None:
    """Set ``part``'s attributes back to what :func:`capture` recorded (objects and models
    that exist already are restored in place; references to the run's own objects are set to
    ``objects[name]``)."""
    objects = {} if objects is None else objects
    for name, value in state.items():
        if name == "__skipped__":
            continue
        try:
            setattr(part, name, _decode(value, getattr(part, name, None), objects))
        except _NoTarget:  # a model its part has not built (yet): left to the part
            continue


class PartState:
    """:class:`~hnm.types.Stateful` over a part's attributes (see the module's docstring):
    ``state_dict()`` captures every attribute but those named in ``not_state`` (by this class
    or any base), ``load_state_dict()`` sets them back (objects and models that exist already
    are restored in place)."""

    not_state: ClassVar[tuple[str, ...]] = ()

    def state_dict(self) -> dict[str, Any]:
        names = {n for cls in type(self).__mro__ for n in vars(cls).get("not_state", ())}
        return capture(self, exclude=names)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        restore(self, state)


# -- the process's random generators ---------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """torch's (CPU and CUDA), numpy's global and Python's generators."""
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
