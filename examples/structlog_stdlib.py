"""structlog through stdlib ``logging`` (``ProcessorFormatter``), next to a ``SentryHandler``.

    python examples/structlog_stdlib.py      # local inbox unless SENTRY_DSN is set

One pipeline: the processor shares the handler's client (one worker, one queue, one set of
breadcrumbs). A structlog call passes through the processor *and* reaches the handler, yet
arrives once: the handler recognises what the processor already sent. Plain ``logging`` calls
(from libraries, say) go through the handler as usual.
"""

from __future__ import annotations

import logging
import sys

import structlog
from _inbox import dsn_or_local_inbox

from sentry_log_handler import SentryHandler, SentryProcessor


def main() -> int:
    with dsn_or_local_inbox() as (dsn, inbox):
        handler = SentryHandler(dsn, environment="development")
        sentry = SentryProcessor(handler=handler, tag_keys=["feature"])

        console = logging.StreamHandler()
        console.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog.dev.ConsoleRenderer(colors=False),
                foreign_pre_chain=[
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.add_log_level,
                ],
            )
        )
        root = logging.getLogger()
        root.addHandler(console)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        structlog.configure(
            processors=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
                sentry,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )

        log = structlog.get_logger("shop.checkout")
        log.info("cart loaded", items=3)  # one breadcrumb, not two
        log.error("payment declined", order_id=42, user_id="u-1", feature="pay")  # one event
        logging.getLogger("shop.legacy").error("stock sync failed for %s", "A-1")  # handler

        delivered = handler.flush(10)
        root.removeHandler(handler)
        root.removeHandler(console)
        handler.close()  # the processor's client is the handler's: closing it once is enough
        if inbox is not None:
            events = inbox.wait_for_events(2)
            for event in events:
                print("inbox got:", event["level"], event["logger"],
                      event["logentry"].get("formatted") or event["logentry"]["message"])
            print(f"{len(events)} events for 2 error calls")
        return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
