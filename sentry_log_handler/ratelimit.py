"""Server-driven rate limits: what Sentry told us not to send, and until when.

Sentry (Relay) tells a client to back off in two ways: the structured
``X-Sentry-Rate-Limits`` header, which may arrive on ANY response (even a 200, to warn
before we waste a request), and a plain ``429`` with an optional ``Retry-After``.
Ignoring either one gets a client's requests rejected for longer, so the transport
feeds every response to :meth:`RateLimiter.update` and asks :meth:`RateLimiter.is_limited`
before each send.

The module is deliberately free of HTTP libraries: it takes a status code and any
``Mapping`` of headers, so the transport, the one-shot sender and tests share it.

Deadlines are kept on the ``time.monotonic()`` clock: a wall-clock jump (NTP, suspend,
an operator fixing the date) must neither lift a limit early nor extend it for hours.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Callable, Optional

__all__ = [
    "ALL_CATEGORIES",
    "DEFAULT_RETRY_AFTER",
    "KNOWN_CATEGORIES",
    "RateLimiter",
    "categories_for_item",
    "category_for_item",
    "parse_rate_limits",
    "parse_retry_after",
]

#: Key under which a limit with an empty category list ("everything") is stored.
ALL_CATEGORIES = "all"

#: Back-off for a 429 that carries neither header (Sentry's SDK rate-limiting spec).
DEFAULT_RETRY_AFTER = 60.0

#: Data categories this client understands. Limits naming only other categories are
#: ignored, as the spec requires: they concern data we never send, and applying them to
#: a catch-all would silence us for no reason.
KNOWN_CATEGORIES = frozenset(
    {
        "default",
        "error",
        "transaction",
        "security",
        "attachment",
        "session",
        "profile",
        "profile_chunk",
        "replay",
        "monitor",
        "log_item",
        "log_byte",
        "span",
        "feedback",
        "trace_metric",
        "internal",
    }
)

# Envelope item type -> the categories whose limit stops that item. The first one is
# the category to count a drop under (client reports); the others also block it
# (log items are limited by count AND by bytes; Relay applies both to logs).
_ITEM_CATEGORIES: dict[str, tuple[str, ...]] = {
    "event": ("error",),
    "transaction": ("transaction",),
    "log": ("log_item", "log_byte"),
    "client_report": ("internal",),
    "attachment": ("attachment",),
    "session": ("session",),
    "sessions": ("session",),
    "span": ("span",),
    "profile": ("profile",),
    "profile_chunk": ("profile_chunk",),
    "replay_event": ("replay",),
    "replay_recording": ("replay",),
    "replay_video": ("replay",),
    "check_in": ("monitor",),
    "feedback": ("feedback",),
    "trace_metric": ("trace_metric",),
}


def category_for_item(item_type: str) -> str:
    """Return the rate-limit / client-report category of an envelope item type.

    Item types and data categories look alike but differ (``event`` counts as ``error``,
    ``log`` as ``log_item``, ``check_in`` as ``monitor``); getting this wrong means either
    ignoring a limit or reporting drops under a category Sentry does not show. Unknown
    item types fall back to ``default``.
    """
    cats = _ITEM_CATEGORIES.get(item_type)
    return cats[0] if cats else "default"


def categories_for_item(item_type: str) -> tuple[str, ...]:
    """Every category whose limit blocks an item of ``item_type``.

    An ``event`` is blocked by ``error`` and, conservatively, by ``default``; a ``log``
    item by ``log_item`` and by ``log_byte``.
    """
    if item_type == "event":
        return ("error", "default")
    return _ITEM_CATEGORIES.get(item_type, ("default",))


def _parse_seconds(text: str) -> Optional[float]:
    """A non-negative finite number of seconds, or None when ``text`` is not one."""
    try:
        value = float(text.strip())
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def parse_rate_limits(value: str) -> tuple[list[tuple[float, tuple[str, ...]]], bool]:
    """Parse an ``X-Sentry-Rate-Limits`` value.

    Returns ``(limits, any_valid)``: ``limits`` is a list of ``(seconds, categories)``
    where ``categories`` is ``(ALL_CATEGORIES,)`` for an empty list and otherwise only
    the known categories (an entry naming only unknown ones is left out). ``any_valid``
    says whether at least one entry was well-formed, so a 429 with a garbled header can
    still fall back to ``Retry-After``. Never raises: a bad entry is skipped, not fatal,
    because one typo in a proxy-added header must not disable rate limiting.

    Format: comma-separated ``retry_after:categories:scope[:reason_code[:namespaces...]]``;
    spaces are ignored; dimensions after ``categories`` are ignored (scope, reason_code and
    metric namespaces concern data or distinctions this client does not have).
    """
    limits: list[tuple[float, tuple[str, ...]]] = []
    any_valid = False
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) < 2:
            continue  # needs at least retry_after and categories
        seconds = _parse_seconds(parts[0])
        if seconds is None:
            continue
        any_valid = True
        names = [c.strip() for c in parts[1].split(";")]
        names = [c for c in names if c]
        if not names:
            limits.append((seconds, (ALL_CATEGORIES,)))
            continue
        known = tuple(c for c in names if c in KNOWN_CATEGORIES)
        if known:
            limits.append((seconds, known))
    return limits, any_valid


def parse_retry_after(value: str, wall_now: float) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date).

    ``wall_now`` is epoch seconds: an HTTP date is absolute wall-clock time, the only
    place this module needs that clock. A date in the past means 0. Returns None when
    the value is neither form (the caller then uses :data:`DEFAULT_RETRY_AFTER`).
    """
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        # 3.9 raises TypeError on garbage, 3.10+ ValueError.
        return None
    try:
        if when.tzinfo is None:  # "-0000" dates are naive; RFC 7231 dates are GMT
            delta = when.replace(tzinfo=datetime.timezone.utc).timestamp() - wall_now
        else:
            delta = when.timestamp() - wall_now
    except (OverflowError, ValueError, OSError):
        return None
    return max(0.0, delta)


def _header_text(value: object) -> Optional[str]:
    """Header values as text, whatever the HTTP library handed us."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return None


def _normalise(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names; repeated X-Sentry-Rate-Limits values are joined.

    A plain dict may hold one header under two spellings; HTTP says repeated list-valued
    headers mean the comma-joined list, which is exactly this header's syntax.
    """
    out: dict[str, str] = {}
    try:
        items: Iterable[tuple[object, object]] = list(headers.items())
    except Exception:  # a broken Mapping must not take the worker down
        return out
    for key, raw in items:
        name = _header_text(key)
        text = _header_text(raw)
        if name is None or text is None:
            continue
        name = name.strip().lower()
        if name in out and name == "x-sentry-rate-limits":
            out[name] = out[name] + "," + text
        else:
            out.setdefault(name, text)
    return out


class RateLimiter:
    """Per-DSN table of category -> monotonic deadline. Thread-safe.

    The worker thread updates it after each response while ``flush()`` callers and the
    one-shot sender may query it, so every access takes one short lock.

    ``internal`` (client reports) is blocked only by an ``internal`` or an "all" limit,
    never by limits on other categories: the drops we report are exactly what an
    ``error`` limit causes, and blocking the report would hide them. (Relay promises
    never to emit an ``internal`` limit; the "all" limit does apply to it.)

    ``clock`` and ``wall_clock`` exist for tests; ``now`` arguments are on ``clock``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def after_fork(self) -> None:
        """Give a forked child a fresh lock (the parent's may have been held at fork).

        The limits themselves are kept: they belong to the DSN, which the child shares.
        """
        self._lock = threading.Lock()

    def update(self, status: int, headers: Mapping[str, str], now: Optional[float] = None) -> None:
        """Apply the limits a response announces. Never raises.

        ``X-Sentry-Rate-Limits`` is honoured on every status code. Only when it is absent
        (or has no well-formed entry) does a 429 fall back to ``Retry-After``, then to
        60 s, for all categories. A limit never shortens an existing one.
        """
        # Defensive: a parsing bug must never kill the worker thread that calls this.
        with contextlib.suppress(Exception):
            self._update(status, headers, now)

    def _update(self, status: int, headers: Mapping[str, str], now: Optional[float]) -> None:
        if now is None:
            now = self._clock()
        normal = _normalise(headers) if headers is not None else {}
        limits: list[tuple[float, tuple[str, ...]]] = []
        header = normal.get("x-sentry-rate-limits")
        valid = False
        if header is not None:
            limits, valid = parse_rate_limits(header)
        if status == 429 and not valid:
            seconds: Optional[float] = None
            retry_after = normal.get("retry-after")
            if retry_after is not None:
                seconds = parse_retry_after(retry_after, self._wall_clock())
            if seconds is None:
                seconds = DEFAULT_RETRY_AFTER
            limits = [(seconds, (ALL_CATEGORIES,))]
        if not limits:
            return
        with self._lock:
            for seconds, categories in limits:
                deadline = now + seconds
                for category in categories:
                    if deadline > self._until.get(category, -math.inf):
                        self._until[category] = deadline
            # Forget expired entries so the table cannot grow and snapshots stay readable.
            for category in [c for c, d in self._until.items() if d <= now]:
                del self._until[category]

    def _deadline(self, category: str) -> float:
        """Latest deadline affecting ``category`` (its own or "all"); lock held."""
        own = self._until.get(category, -math.inf)
        return max(own, self._until.get(ALL_CATEGORIES, -math.inf))

    def is_limited(self, category: str, now: Optional[float] = None) -> bool:
        """True while ``category`` itself or every category ("all") is limited."""
        if now is None:
            now = self._clock()
        with self._lock:
            return self._deadline(category) > now

    def event_limited(self, now: Optional[float] = None) -> bool:
        """True when an event item must not be sent.

        Error events are counted as ``error``; ``default`` is checked too because older
        servers and documentation associate message-only events with it, and Relay
        typically announces the two together, so checking both costs nothing.
        """
        return self.item_limited("event", now)

    def item_limited(self, item_type: str, now: Optional[float] = None) -> bool:
        """True when any category blocking ``item_type`` (see categories_for_item) is limited."""
        if now is None:
            now = self._clock()
        with self._lock:
            return any(self._deadline(c) > now for c in categories_for_item(item_type))

    def limited_until(self, category: str, now: Optional[float] = None) -> Optional[float]:
        """Monotonic deadline of the limit on ``category`` (or "all"), None when not limited."""
        if now is None:
            now = self._clock()
        with self._lock:
            deadline = self._deadline(category)
        return deadline if deadline > now else None

    def any_active(self, now: Optional[float] = None) -> bool:
        """True when some limit is still running (the worker uses it to pick a flush path)."""
        if now is None:
            now = self._clock()
        with self._lock:
            return any(d > now for d in self._until.values())

    def snapshot(self, now: Optional[float] = None) -> dict[str, float]:
        """Active limits as ``{category: seconds remaining}`` for debugging and tests."""
        if now is None:
            now = self._clock()
        with self._lock:
            return {c: d - now for c, d in sorted(self._until.items()) if d > now}

    def clear(self) -> None:
        """Drop every limit (tests; a DSN change)."""
        with self._lock:
            self._until.clear()
