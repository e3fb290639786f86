"""User-facing errors: one paragraph that names the file, line or key and what was expected."""

from __future__ import annotations


class HnmError(Exception):
    """An error caused by the user's input or configuration.

    The CLI prints ``str(err)`` without a traceback and exits with status 2.
    """


class DataError(HnmError):
    """A dataset file or folder is missing or malformed."""


class ConfigError(HnmError):
    """A configuration value is invalid."""


class StartRefused(ConfigError):
    """A run refused before it started (it wrote nothing yet): the CLI prints it, but neither
    logs it into the run folder nor marks that folder failed, which may be another run's."""


def check_choice(name: str, value: object, valid: tuple | list) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``valid``."""
    if value not in valid:
        raise ConfigError(
            f"{name}={value!r} is not valid; expected one of: {', '.join(map(str, valid))}"
        )


def _num(x: float) -> str:
    """A bound as written: ``4294967295``, not ``4.29497e+09``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def check_range(name: str, value: object, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a number within the bounds.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; None leaves that side
    unbounded. NaN and non-numbers are refused."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    ok = number == number and not isinstance(value, bool)
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number < high if high_open else number <= high
    if ok:
        return
    if low is not None and high is not None:
        expected = (f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}"
                    f"{')' if high_open else ']'}")
    elif low is not None:
        expected = f"{'>' if low_open else '>='} {_num(low)}"
    elif high is not None:
        expected = f"{'<' if high_open else '<='} {_num(high)}"
    else:
        expected = "a number"
    raise ConfigError(f"{name}={value!r} is not valid; expected {expected}")
