"""``python -m sentry_log_handler demo``: the main job on a fresh machine.

Sends the original job's example event through ``send_event`` and the same facts through
``logging`` with a ``SentryHandler``. Without ``SENTRY_DSN`` both go to a local inbox started
in-process, and what it received is printed, so the whole path is visible with no account.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Optional, TextIO

__all__ = ["EXAMPLE_INPUT", "run_demo"]

# The original "send event" job's example input (shared/origin).
EXAMPLE_INPUT: dict[str, Any] = {
    "message": "User login failed - invalid credentials",
    "level": "warning",
    "environment": "staging",
    "release": "v1.2.3",
    "user_id": "user_12345",
    "tags": ["feature:auth", "component:login"],
    "extra": {"ip_address": "192.168.1.1", "user_agent": "Mozilla/5.0..."},
}


def run_demo(out: Optional[TextIO] = None) -> int:
    from .handler import SentryHandler
    from .inbox import Inbox
    from .send import send_event

    out = out or sys.stdout
    dsn = os.environ.get("SENTRY_DSN") or None
    inbox: Optional[Inbox] = None
    if dsn is None:
        inbox = Inbox()
        inbox.start()
        dsn = inbox.dsn
        print(f"SENTRY_DSN is not set: using a local inbox at {dsn}", file=out)
    else:
        print("sending to the DSN in SENTRY_DSN", file=out)
    try:
        print("\n1. send_event(**EXAMPLE_INPUT) returned:", file=out)
        result = send_event(**EXAMPLE_INPUT, dsn=dsn)
        print(json.dumps(result, indent=2), file=out)

        print("\n2. logger.warning(...) through SentryHandler:", file=out)
        logger = logging.getLogger("demo.auth")
        logger.propagate = False
        handler = SentryHandler(dsn, level=logging.WARNING, environment="staging",
                                release="v1.2.3")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            logger.info("login form submitted")  # becomes a breadcrumb
            logger.warning(
                "User login failed - %s",
                "invalid credentials",
                extra={
                    "tags": ["feature:auth", "component:login"],
                    "user_id": "user_12345",
                    "user_agent": "Mozilla/5.0...",
                    "password": "hunter2",  # scrubbed: arrives as [Filtered]
                },
            )
            delivered = handler.flush(10.0)
            print(f"   flushed, all delivered: {delivered}", file=out)
        finally:
            logger.removeHandler(handler)
            handler.close()

        if inbox is not None:
            events = inbox.wait_for_events(2, timeout=10.0)
            print(f"\n3. the local inbox received {len(events)} event(s):", file=out)
            for event in events:
                print(json.dumps(_summary(event), indent=2), file=out)
            return 0 if result.get("success") and delivered else 1
        return 0 if result.get("success") and delivered else 1
    finally:
        if inbox is not None:
            inbox.stop()


def _summary(event: dict[str, Any]) -> dict[str, Any]:
    keys = ("event_id", "level", "logger", "logentry", "environment", "release", "tags",
            "user", "extra", "breadcrumbs")
    return {key: event[key] for key in keys if key in event}
