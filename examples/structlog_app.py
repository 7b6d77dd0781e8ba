"""structlog's native chain: errors become Sentry events, with the request's context.

    python examples/structlog_app.py         # local inbox unless SENTRY_DSN is set

``SentryProcessor`` sits before the renderer: it sees the whole event dict (including what
``merge_contextvars`` brought in) and hands it on unchanged, so the console line is the same
as without it.
"""

from __future__ import annotations

import sys

import structlog
from _inbox import dsn_or_local_inbox
from structlog.contextvars import bind_contextvars, clear_contextvars

from sentry_log_handler import SentryProcessor


def main() -> int:
    with dsn_or_local_inbox() as (dsn, inbox):
        sentry = SentryProcessor(
            dsn, tag_keys=["feature"], event_id_key="sentry_id", environment="development"
        )
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                sentry,  # before format_exc_info and the renderer
                structlog.processors.format_exc_info,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ]
        )
        log = structlog.get_logger()

        clear_contextvars()
        bind_contextvars(request_id="req-7")  # e.g. in a web framework's middleware
        log.info("cart loaded", items=3)  # a breadcrumb of the next event
        log.error("payment declined", order_id=42, user_id="u-1", feature="pay")
        try:
            {}["missing"]
        except KeyError:
            log.exception("price lookup failed", sku="A-1")

        delivered = sentry.flush(10)
        sentry.close()
        if inbox is not None:
            for event in inbox.wait_for_events(2):
                print("inbox got:", event["level"], event["logentry"]["message"],
                      "tags:", event.get("tags", {}).get("feature"),
                      "extra:", event.get("extra"))
        return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
