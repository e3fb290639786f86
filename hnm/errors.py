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


def check_choice(name: str, value: object, valid: tuple | list) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``valid``."""
    if value not in valid:
        raise ConfigError(
            f"{name}={value!r} is not valid; expected one of: {', '.join(map(str, valid))}"
        )
