"""Shared by the examples: use ``SENTRY_DSN`` when set, else a local inbox started here.

Kept tiny on purpose; each example reads top to bottom without it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from sentry_log_handler.inbox import Inbox


@contextlib.contextmanager
def dsn_or_local_inbox() -> Iterator[tuple[str, Inbox | None]]:
    dsn = os.environ.get("SENTRY_DSN")
    if dsn:
        yield dsn, None
        return
    with Inbox() as inbox:
        print(f"SENTRY_DSN is not set: sending to a local inbox at {inbox.dsn}")
        yield inbox.dsn, inbox
