"""Map logging levels and level names onto Sentry's five event levels.

Sentry accepts only ``fatal``, ``error``, ``warning``, ``info`` and ``debug``; Relay drops
anything else (``warn``, numbers, custom names) from the event, so the mapping is done here,
once, for every front door.
"""

from __future__ import annotations

import logging
from typing import Union

__all__ = ["SENTRY_LEVELS", "from_levelno", "parse_level", "to_levelno"]

SENTRY_LEVELS = ("fatal", "error", "warning", "info", "debug")

_ALIASES = {
    "fatal": "fatal",
    "critical": "fatal",
    "error": "error",
    "exception": "error",
    "warning": "warning",
    "warn": "warning",
    "info": "info",
    "debug": "debug",
}

_TO_LEVELNO = {
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def parse_level(value: Union[str, int]) -> str:
    """Return the Sentry level for a name (any case, with aliases) or a logging number.

    Raises ``ValueError`` naming the value and the accepted names for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid level {value!r}: expected one of {', '.join(SENTRY_LEVELS)}")
    if isinstance(value, int):
        return from_levelno(value)
    if isinstance(value, str):
        found = _ALIASES.get(value.strip().lower())
        if found is not None:
            return found
    raise ValueError(
        f"invalid level {value!r}: expected one of {', '.join(SENTRY_LEVELS)}"
        " (or critical, warn)"
    )


def from_levelno(levelno: int) -> str:
    """Sentry level for a logging number; custom levels take the nearest standard one below."""
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def to_levelno(value: Union[str, int]) -> int:
    """A logging number for a level given as a number or as a logging/Sentry name."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        name = value.strip().upper()
        number = logging.getLevelName(name)
        if isinstance(number, int):
            return number
        return _TO_LEVELNO[parse_level(value)]
    raise ValueError(f"invalid level {value!r}: expected a logging level name or number")
