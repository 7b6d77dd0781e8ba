"""The denylist scrubbing step: values under sensitive keys become ``"[Filtered]"``.

Applied by :mod:`sentry_log_handler.normalize` to extra, breadcrumb data, frame locals,
contexts and the user; IP addresses and e-mail keys only when ``send_default_pii`` is False.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .limits import (
    CYCLE,
    FILTERED,
)

# --- scrubbing -------------------------------------------------------------------------------

DEFAULT_DENYLIST: frozenset[str] = frozenset(
    {
        # Matched as substrings of the normalised key (see scrub): any key containing them.
        "password",
        "passwd",
        "mysql_pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "accesskey",
        "private_key",
        "privatekey",
        "authorization",
        "credential",
        "cookie",
        "csrf",
        "xsrf",
        "sessionid",
        "session_id",
        "session_key",
        "signature",
        # Surrounded by "_": whole words only, so "auth" does not hit "author"/"oauth_state"
        # and "session" does not hit "sessions_total"-like counters only by accident.
        "_auth_",
        "_session_",
        "_pwd_",
        "_jwt_",
    }
)
"""Secrets: always filtered. Lower-case; ``-`` written as ``_``."""

PII_DENYLIST: frozenset[str] = frozenset(
    {
        "ip_address",
        "ipaddress",
        "remote_addr",
        "forwarded_for",  # x-forwarded-for
        "real_ip",  # x-real-ip
        "client_ip",
        "_ip_",
        "_email_",
        "email_address",
    }
)
"""Personal data: filtered only when ``send_default_pii`` is False (the default)."""

NO_PII_DENYLIST = DEFAULT_DENYLIST | PII_DENYLIST
_BEARER = re.compile(r"\s*bearer\s+\S{8,}", re.IGNORECASE)


def _key_matcher(entries: frozenset[str]) -> Callable[[str], bool]:
    """Build a cached predicate: does a (raw) key match any denylist entry?

    Rule: the key is lower-cased, ``-``/space/``.`` become ``_``, and it is wrapped in ``_``;
    it matches if any entry is a substring of that. So plain entries ("token") match anywhere
    ("csrf_token", "accessToken"), and entries written with ``_`` around them ("_auth_") match a
    whole ``_``-separated word only. ``request_id``, ``user_agent``, ``order_id`` never match.
    """
    cache: dict[str, bool] = {}
    ordered = tuple(sorted(entries))

    def matches(key: str) -> bool:
        hit = cache.get(key)
        if hit is None:
            norm = "_" + key.lower().replace("-", "_").replace(" ", "_").replace(".", "_") + "_"
            hit = any(e in norm for e in ordered)
            if len(cache) < 4096:
                cache[key] = hit
        return hit

    return matches


_MATCHERS: dict[frozenset[str], Callable[[str], bool]] = {}


def matcher_for(entries: frozenset[str]) -> Callable[[str], bool]:
    m = _MATCHERS.get(entries)
    if m is None:
        m = _key_matcher(entries)
        if len(_MATCHERS) < 16:
            _MATCHERS[entries] = m
    return m


def scrub(
    value: Any,
    *,
    send_default_pii: bool = False,
    denylist: frozenset[str] = DEFAULT_DENYLIST,
) -> Any:
    """Copy of ``value`` with values under denylisted keys replaced by ``"[Filtered]"``.

    Walks dicts and lists/tuples at any depth (meant for :func:`safe_value` output, but safe on
    anything: cycles and depth are bounded, other objects are returned as they are). When
    ``send_default_pii`` is False, :data:`PII_DENYLIST` applies too. String values that look like
    ``Bearer <credential>`` are filtered wherever they appear. Never raises.
    """
    entries = denylist if send_default_pii else denylist | PII_DENYLIST
    try:
        return scrub_tree(value, matcher_for(frozenset(entries)), 0, set())
    except BaseException:
        return FILTERED  # fail closed: better lose the value than leak it


def scrub_tree(value: Any, matches: Callable[[str], bool], depth: int, active: set[int]) -> Any:
    if isinstance(value, str):
        if value[:1] in ("b", "B", " ") and _BEARER.match(value):
            return FILTERED
        return value
    if depth > 64:
        return value
    if isinstance(value, dict):
        if id(value) in active:
            return CYCLE
        active.add(id(value))
        out: dict[Any, Any] = {}
        for k, v in dict.items(value):
            if isinstance(k, str) and matches(k):
                out[k] = FILTERED
            else:
                out[k] = scrub_tree(v, matches, depth + 1, active)
        active.discard(id(value))
        return out
    if isinstance(value, (list, tuple)):
        if id(value) in active:
            return CYCLE
        active.add(id(value))
        items = [scrub_tree(v, matches, depth + 1, active) for v in value]
        active.discard(id(value))
        return items
    return value
