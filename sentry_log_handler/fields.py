"""Single-field cleaners: tag keys and values, environment, release, logger, level.

Each returns a value Relay accepts as is (or None when nothing valid is left), so that the
event builder and the normaliser never send a field the server would drop.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from .levels import parse_level
from .limits import (
    DIST_MAX,
    ENVIRONMENT_MAX,
    LOGGER_MAX,
    RELEASE_MAX,
    TAG_KEY_MAX,
    TAG_VALUE_MAX,
)
from .serialize import (
    safe_str,
    truncate,
    valid_utf8,
)

# --- single-field cleaners (also used by the event builder) --------------------------------

_TAG_KEY_OK = re.compile(r"[A-Za-z0-9_.:-]+\Z")
_TAG_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_NAME_BAD = re.compile(r"[/\\\r\n\t\f\v]")


def clean_tag_key(key: Any) -> Optional[str]:
    """A valid tag key, or None when nothing usable is left.

    Sentry documents tag keys as ``[a-zA-Z0-9_.:-]``; Relay rejects at least ``/ @ \\n`` and
    non-ASCII, and trims beyond 200 characters. Valid keys are returned unchanged; other
    characters become ``_``. We keep Relay's 200 rather than the 32 of very old servers, since
    shortening would alter keys users chose deliberately.
    """
    s = key if type(key) is str else safe_str(key, TAG_KEY_MAX)
    if not _TAG_KEY_OK.match(s):
        s = _TAG_KEY_BAD.sub("_", s)
    s = s[:TAG_KEY_MAX]
    return s if s.strip("_") else None


def clean_tag_value(value: Any) -> str:
    """A valid tag value: string, 1..200 characters, no newline (Relay rejects those).

    Newlines become spaces; an empty or whitespace-only value (also rejected) becomes
    ``"<empty>"`` so that the tag's presence is kept.
    """
    s = value if type(value) is str else safe_str(value, TAG_VALUE_MAX * 2)
    if "\n" in s:
        s = s.replace("\r\n", " ").replace("\n", " ")
    s = truncate(valid_utf8(s), TAG_VALUE_MAX)
    return s if s.strip() else "<empty>"


def clean_logger(name: Any) -> str:
    """Logger name: at most 64 characters, newlines replaced (Relay rejects them)."""
    s = name if type(name) is str else safe_str(name, LOGGER_MAX)
    if "\n" in s or "\r" in s:
        s = s.replace("\r", " ").replace("\n", " ")
    return truncate(valid_utf8(s), LOGGER_MAX)


def _clean_name(value: Any, max_len: int, reserved: str) -> Optional[str]:
    if value is None:
        return None
    s = value if type(value) is str else safe_str(value, max_len * 2)
    s = _NAME_BAD.sub("-", valid_utf8(s).strip()).strip()
    if s in ("", ".", "..") or s.lower() == reserved:
        return None
    return s


def clean_environment(value: Any) -> Optional[str]:
    """A valid environment or None.

    Relay rejects ``/ \\ \\r \\n \\t \\f``, ``.``, ``..``, ``none`` (any case), empty and > 64
    characters. Forbidden characters become ``-``, surrounding whitespace is stripped, and an
    over-long name is truncated (it is only a label); None if nothing valid remains.
    """
    s = _clean_name(value, ENVIRONMENT_MAX, "none")
    if s is None:
        return None
    return _clean_name(s[:ENVIRONMENT_MAX], ENVIRONMENT_MAX, "none")


def clean_release(value: Any) -> Optional[str]:
    """A valid release or None.

    Same character rules as environments (``latest`` is reserved instead of ``none``), at most
    200 characters. An over-long release gives None rather than a truncated one: a cut-off
    version string would silently create a different, bogus release in Sentry.
    """
    s = _clean_name(value, RELEASE_MAX, "latest")
    if s is None or len(s) > RELEASE_MAX:
        return None
    return s


def clean_dist(value: Any) -> Optional[str]:
    """A valid ``dist`` (non-empty, at most 64 characters, same characters as release) or None."""
    s = _clean_name(value, DIST_MAX, "\0")
    if s is None or len(s) > DIST_MAX:
        return None
    return s


def clean_level(level: Any) -> str:
    """Sentry level name for a level name or ``logging`` number; unknown values give "error".

    Relay accepts only fatal/error/warning/info/debug (lower case; "warn" is invalid). The
    mapping itself lives in :mod:`sentry_log_handler.levels`, shared with every front door;
    here, on the worker, an unknown value (from ``before_send``, say) must not raise.
    """
    if isinstance(level, float) and level == level and abs(level) < 2**62:
        level = int(level)
    try:
        return parse_level(level)
    except (ValueError, TypeError):
        return "error"
