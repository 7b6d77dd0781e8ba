"""Exactly one event per call when structlog and stdlib logging are chained.

With the ``structlog.stdlib`` bridge a call passes through ``SentryProcessor`` and then reaches
``logging``, where a ``SentryHandler`` may be attached too. The processor marks what it
captured here (per thread: the bridge hands the record to logging synchronously, on the same
thread), and the handler skips a record that carries that very event dict (``ProcessorFormatter``
puts it in ``record.msg``) or that very ``event`` string object (``render_to_log_kwargs``).
Identity, not equality: two genuinely separate calls with equal text are both reported.
Users do not have to remember to configure one of the two away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import MutableMapping
from typing import Any, Optional

__all__ = ["is_captured", "mark_captured"]

_local = threading.local()


def mark_captured(event_dict: MutableMapping[str, Any]) -> None:
    """Remember the event dict the processor just handled (one per thread, replaced each call)."""
    _local.last = event_dict


def is_captured(record: logging.LogRecord) -> bool:
    last: Optional[MutableMapping[str, Any]] = getattr(_local, "last", None)
    if last is None:
        return False
    msg = record.msg
    return msg is last or (isinstance(msg, str) and msg is last.get("event"))
