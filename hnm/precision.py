"""Where bfloat16 runs in hardware, and what ``auto`` chooses from it.

bf16 matrix products are fast only where the processor multiplies bf16 natively: x86 CPUs
with AMX-BF16 (Intel Sapphire Rapids and later) or AVX512-BF16 (Intel Cooper Lake, AMD Zen 4
and later), and CUDA GPUs for which ``torch.cuda.is_bf16_supported()`` holds (Ampere and
later). Elsewhere torch still runs bf16 autocast, with the same rounding, by converting to
and from float32, which is usually slower than float32 itself.

Two settings take ``auto``:

- ``encoder.inference=auto``: ``bf16`` (autocast for every no-grad pass) where the device has
  bf16 hardware, ``torch`` (float32) elsewhere;
- ``trainer.precision=auto``: ``bf16-mixed`` where it has, ``32-true`` elsewhere (Lightning
  has no such value: hnm resolves it before the trainer is built).

:func:`choose` resolves both for a run, logs the choice once and writes the resolved values
into the run's config (``.hydra/config.yaml``, which ``hnm compare`` reads: runs that ran in
bf16 and in float32 differ in a condition even when both asked for ``auto``; the overrides
file keeps what was asked). Asking for bf16 explicitly where there is no bf16 hardware is
allowed, with a warning, not refused: the setting is a condition of an experiment, and a sweep
that names it must compute the same thing on every machine it lands on, slow or not.

The environment variable ``HNM_BF16_HARDWARE`` overrides the detection: ``0`` as if the
device had no bf16 hardware (tests of the float32 fallback; a machine whose detection is
wrong), ``1`` as if it had.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

ENV = "HNM_BF16_HARDWARE"
CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names, fastest first
_SAID: set[str] = set()  # messages already logged in this process


@dataclass(frozen=True)
class Support:
    """Whether a device multiplies bf16 in hardware, and a one-line description of why."""

    ok: bool
    what: str


def _cpuinfo() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags from ``/proc/cpuinfo`` (empty where absent)."""
    name, flags = "", set[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not name:
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else the platform's processor string)."""
    import platform

    return _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown CPU"


def _cpu_bf16_flags() -> list[str]:
    """The bf16 instruction sets of this CPU among :data:`CPU_FLAGS`."""
    _, flags = _cpuinfo()
    if flags:
        return [f for f in CPU_FLAGS if f in flags]
    found = []  # no /proc/cpuinfo (macOS, Windows): torch's own checks
    cpu = getattr(torch, "cpu", None)
    for flag, probe in (("amx_bf16", "_is_amx_tile_supported"),
                        ("avx512_bf16", "_is_avx512_bf16_supported")):
        try:
            if getattr(cpu, probe)():
                found.append(flag)
        except (AttributeError, RuntimeError):
            pass
    return found


def bf16_support(device: str | torch.device = "cpu") -> Support:
    """Whether ``device`` (``cpu``, ``cuda``, ``cuda:1``, ``gpu``) has bf16 hardware."""
    kind = torch.device("cuda" if str(device) == "gpu" else device).type
    forced = os.environ.get(ENV)
    if forced in ("0", "1"):
        where = cpu_name() if kind == "cpu" else kind
        return Support(forced == "1", f"{where} (detection overridden: {ENV}={forced})")
    if kind == "cpu":
        flags = _cpu_bf16_flags()
        if flags:
            extra = "" if "amx_bf16" in flags else ", no AMX"
            return Support(True, f"{cpu_name()} ({', '.join(flags)}{extra})")
        return Support(False, f"{cpu_name()} (neither AMX-BF16 nor AVX512-BF16)")
    if kind == "cuda":
        if not torch.cuda.is_available():
            return Support(False, "no CUDA device")
        name = torch.cuda.get_device_name(torch.device(device) if ":" in str(device) else None)
        try:  # without emulation: the hardware's own bf16
            ok = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch
            ok = torch.cuda.is_bf16_supported()
        return Support(bool(ok), f"{name} ({'bf16' if ok else 'no bf16 hardware'})")
    return Support(False, f"{kind} (bf16 not detected on this device type)")


def say_once(message: str, level: int = logging.INFO) -> None:
    """Log ``message`` the first time this process sees it."""
    if message not in _SAID:
        _SAID.add(message)
        log.log(level, "%s", message)


def resolve_inference(choice: str, device: str | torch.device = "cpu",
                      key: str = "encoder.inference") -> str:
    """The no-grad backend that runs for ``choice`` on ``device``: ``auto`` becomes ``bf16``
    or ``torch`` (logged once); ``bf16`` without bf16 hardware stays, with a warning once;
    every other choice is returned as is."""
    if choice not in ("auto", "bf16"):
        return choice
    support = bf16_support(device)
    if choice == "auto":
        pick = "bf16" if support.ok else "torch"
        say_once(f"{key}=auto: {pick} ({'bf16 autocast' if support.ok else 'float32'}) on "
                 f"{support.what}")
        return pick
    if not support.ok:
        say_once(f"{key}=bf16 on {support.what}: no bf16 hardware, so every no-grad pass runs "
                 "bf16 by conversion, usually slower than float32 (results are bf16's either "
                 f"way); {key}=auto picks float32 here, {key}=torch is float32 everywhere",
                 logging.WARNING)
    return choice


def resolve_precision(precision: Any, accelerator: str = "cpu",
                      key: str = "trainer.precision") -> Any:
    """Lightning's precision for ``trainer.precision``: ``auto`` becomes ``bf16-mixed`` or
    ``32-true`` (logged once); ``bf16-mixed`` on a CPU without bf16 hardware stays, with a
    warning once; every other value is returned as is."""
    device = "cuda" if str(accelerator) in ("gpu", "cuda") else "cpu"
    if str(precision) not in ("auto", "bf16-mixed"):
        return precision
    support = bf16_support(device)
    if str(precision) == "auto":
        pick = "bf16-mixed" if support.ok else "32-true"
        say_once(f"{key}=auto: {pick} on {support.what}")
        return pick
    if device == "cpu" and not support.ok:
        say_once(f"{key}=bf16-mixed on {support.what}: no bf16 hardware, so training runs "
                 f"bf16 by conversion, usually slower than float32; {key}=auto picks "
                 "32-true here", logging.WARNING)
    return precision


def _accelerator(cfg: Any) -> str:
    trainer = cfg.get("trainer") if hasattr(cfg, "get") else None
    accel = str(trainer.get("accelerator", "cpu")) if trainer is not None else "cpu"
    if accel == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return accel


def choose(cfg: Any, out: Path | None = None, device: str | None = None) -> dict[str, Any]:
    """Resolve ``encoder.inference`` and ``trainer.precision`` of a composed config in place
    (``auto`` and the bf16 warnings, see the module docstring); when a value changed and
    ``out`` holds a ``.hydra/config.yaml``, the resolved values are written there too.
    ``device``: where the encoder's no-grad passes run (default: the trainer's accelerator).
    Returns the changed keys and their new values."""
    from omegaconf import OmegaConf, open_dict

    changed: dict[str, Any] = {}
    accel = _accelerator(cfg)
    enc = cfg.get("encoder")
    if enc is not None and enc.get("inference") is not None:
        where = device or ("cuda" if accel in ("gpu", "cuda") else "cpu")
        value = resolve_inference(str(enc.inference), where)
        if value != enc.inference:
            changed["encoder.inference"] = value
    trainer = cfg.get("trainer")
    if trainer is not None and trainer.get("precision") is not None:
        value = resolve_precision(trainer.precision, accel)
        if str(value) != str(trainer.precision):
            changed["trainer.precision"] = value
    if not changed:
        return changed
    with open_dict(cfg):
        for key, value in changed.items():
            OmegaConf.update(cfg, key, value, merge=False)
    if out is not None:
        record(out, changed)
    return changed


def record(out: Path, changed: dict[str, Any]) -> None:
    """Write resolved values into the run's ``.hydra/config.yaml`` (rank 0; nothing when the
    run has no such file), keeping every other value and interpolation as Hydra wrote it."""
    from omegaconf import OmegaConf, open_dict

    from hnm.dist import env_rank
    from hnm.runinfo import write_text

    path = Path(out) / ".hydra" / "config.yaml"
    if env_rank() != 0 or not path.is_file():
        return
    node = OmegaConf.load(path)
    with open_dict(node):
        for key, value in changed.items():
            OmegaConf.update(node, key, value, merge=False)
    write_text(path, OmegaConf.to_yaml(node))
