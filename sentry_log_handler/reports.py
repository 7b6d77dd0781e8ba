"""Client reports: counting what we dropped, so the loss is visible in Sentry.

Every place that drops telemetry (full queue, full spool, rate limit, failed send...)
records ``(reason, category, quantity)`` here. The worker periodically takes the
aggregate and ships it as a ``client_report`` envelope item; Sentry then shows the
drops next to the accepted events, which is the only way an operator learns that a
burst of errors never arrived.

Facts checked against Sentry's client-report spec (develop.sentry.dev, "Client
Reports") and Relay's ``ClientReport`` type:

* payload ``{"timestamp": ..., "discarded_events": [{"reason", "category", "quantity"}]}``;
  ``timestamp`` is optional and may be an RFC 3339 string or a UNIX number (Relay keeps
  whole seconds only); ``quantity`` is a non-negative integer;
* the ``client_report`` item is limited to 4 KiB, so large reports are split
  (:data:`MAX_REPORT_ENTRIES` and ``take(max_entries=...)``);
* a 429 must NOT be recorded (Relay already counts it); other 4xx/5xx are ``send_error``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Optional

__all__ = [
    "BEFORE_SEND",
    "BUFFER_OVERFLOW",
    "CACHE_OVERFLOW",
    "EVENT_PROCESSOR",
    "INTERNAL_SDK_ERROR",
    "MAX_REPORT_ENTRIES",
    "NETWORK_ERROR",
    "QUEUE_OVERFLOW",
    "RATELIMIT_BACKOFF",
    "REASONS",
    "SAMPLE_RATE",
    "SEND_ERROR",
    "DropCounter",
    "client_report_payload",
]

# Discard reasons, spelled exactly as the spec lists them (Sentry's outcome pipeline
# only accepts allow-listed reasons, so a typo silently loses the report).
QUEUE_OVERFLOW = "queue_overflow"  # the in-memory queue was full
CACHE_OVERFLOW = "cache_overflow"  # the on-disk spool was full
RATELIMIT_BACKOFF = "ratelimit_backoff"  # dropped because an earlier rate limit is active
NETWORK_ERROR = "network_error"  # network failure, not retried (no spool)
SAMPLE_RATE = "sample_rate"  # sampled out by the configured sample_rate
BEFORE_SEND = "before_send"  # before_send returned None
EVENT_PROCESSOR = "event_processor"  # an event processor / ignore rule dropped it
SEND_ERROR = "send_error"  # server answered 4xx/5xx (not 429)
INTERNAL_SDK_ERROR = "internal_sdk_error"  # our own processing failed
BUFFER_OVERFLOW = "buffer_overflow"  # an internal buffer (logs, breadcrumbs) overflowed

REASONS = frozenset(
    {
        QUEUE_OVERFLOW,
        CACHE_OVERFLOW,
        RATELIMIT_BACKOFF,
        NETWORK_ERROR,
        SAMPLE_RATE,
        BEFORE_SEND,
        EVENT_PROCESSOR,
        SEND_ERROR,
        INTERNAL_SDK_ERROR,
        BUFFER_OVERFLOW,
    }
)

#: Entries per client report that keep its JSON well under Relay's 4 KiB item limit
#: (the longest entry, with a 20-digit quantity, is under 90 bytes).
MAX_REPORT_ENTRIES = 40


class DropCounter:
    """Thread-safe aggregate of drops keyed by ``(reason, category)``.

    :meth:`record` may run on the application's own thread (a full queue is detected
    in ``emit()``), so it does nothing but take a lock and bump two dict entries: no
    allocation beyond the key tuple, no I/O, no validation.

    Two views: the *pending* counts, which :meth:`take` reads and resets atomically so
    no drop is reported twice or lost between read and reset; and the *lifetime* totals
    per reason, which are never reset and feed ``stats()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], int] = {}
        self._lifetime: dict[str, int] = {}

    def after_fork(self) -> None:
        """Reset state in a forked child: the parent reports its own drops.

        Keeping the inherited pending counts would make parent and child both report
        them; the lock is replaced because the parent may have held it at fork time.
        """
        self._lock = threading.Lock()
        self._pending = {}
        self._lifetime = {}

    def record(self, reason: str, category: str, quantity: int = 1) -> None:
        """Count ``quantity`` items of ``category`` dropped for ``reason``.

        Non-positive quantities are ignored rather than rejected: a caller computing
        "items in this envelope" may legitimately get 0, and raising here would happen
        on the application's thread.
        """
        if quantity <= 0:
            return
        key = (reason, category)
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + quantity
            self._lifetime[reason] = self._lifetime.get(reason, 0) + quantity

    def take(self, max_entries: Optional[int] = None) -> list[dict[str, Any]]:
        """Atomically remove and return pending counts as client-report entries.

        With ``max_entries``, at most that many entries are taken and the rest stay
        pending for the next report (keeps each report under the 4 KiB item limit).
        """
        with self._lock:
            if max_entries is None or len(self._pending) <= max_entries:
                taken = self._pending
                self._pending = {}
            else:
                keys = list(self._pending)[: max(0, max_entries)]
                taken = {k: self._pending.pop(k) for k in keys}
        return [
            {"reason": reason, "category": category, "quantity": quantity}
            for (reason, category), quantity in taken.items()
        ]

    def restore(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Put back entries whose report could not be delivered.

        Lifetime totals are not touched: those drops were already counted once.
        Malformed entries are skipped (they can only come from our own ``take``).
        """
        cleaned: list[tuple[tuple[str, str], int]] = []
        for entry in entries:
            try:
                reason = entry["reason"]
                category = entry["category"]
                quantity = entry["quantity"]
            except (KeyError, TypeError):
                continue
            if (
                isinstance(reason, str)
                and isinstance(category, str)
                and isinstance(quantity, int)
                and not isinstance(quantity, bool)
                and quantity > 0
            ):
                cleaned.append(((reason, category), quantity))
        with self._lock:
            for key, quantity in cleaned:
                self._pending[key] = self._pending.get(key, 0) + quantity

    def pending(self) -> bool:
        """True when there is something to report."""
        with self._lock:
            return bool(self._pending)

    def total(self) -> int:
        """Sum of pending quantities (not yet taken)."""
        with self._lock:
            return sum(self._pending.values())

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Copy of the pending counts, without resetting them (tests, benchmarks)."""
        with self._lock:
            return dict(self._pending)

    def lifetime(self) -> dict[str, int]:
        """Drops per reason since creation; never reset by :meth:`take`."""
        with self._lock:
            return dict(self._lifetime)


def _rfc3339(epoch: float) -> str:
    """Whole-second RFC 3339 UTC ("2020-02-07T14:16:00Z"), the spec's own example form.

    Relay truncates the report timestamp to seconds anyway, and a plain ``Z`` string
    parses on every Relay version, old and new.
    """
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def client_report_payload(
    entries: Iterable[Mapping[str, Any]], timestamp: Optional[float] = None
) -> Optional[dict[str, Any]]:
    """Build a ``client_report`` item payload, or None when there is nothing to say.

    ``timestamp`` is epoch seconds (default: now). Entries with a non-positive or
    non-integer quantity are left out instead of failing the whole report at Relay.
    Callers wanting to stay under 4 KiB pass at most :data:`MAX_REPORT_ENTRIES`.
    """
    discarded: list[dict[str, Any]] = []
    for entry in entries:
        quantity = entry.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            continue
        reason = entry.get("reason")
        category = entry.get("category")
        if not isinstance(reason, str) or not isinstance(category, str):
            continue
        discarded.append({"reason": reason, "category": category, "quantity": quantity})
    if not discarded:
        return None
    when = time.time() if timestamp is None else timestamp
    return {"timestamp": _rfc3339(when), "discarded_events": discarded}
