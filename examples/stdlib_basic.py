"""Plain ``logging``: errors become Sentry events, info records become their breadcrumbs.

    python examples/stdlib_basic.py          # local inbox unless SENTRY_DSN is set
"""

from __future__ import annotations

import logging
import sys

from _inbox import dsn_or_local_inbox

from sentry_log_handler import SentryHandler


def main() -> int:
    with dsn_or_local_inbox() as (dsn, inbox):
        handler = SentryHandler(dsn, environment="development", release="examples@1")
        logging.basicConfig(level=logging.INFO, handlers=[logging.StreamHandler(), handler])
        log = logging.getLogger("shop.checkout")

        log.info("cart loaded", extra={"items": 3})  # a breadcrumb
        log.error(
            "payment %s declined",
            "card",
            extra={"tags": {"feature": "pay"}, "user_id": "u-1", "order_id": 42},
        )
        try:
            {}["missing"]
        except KeyError:
            log.exception("price lookup failed")

        delivered = handler.flush(10)
        logging.getLogger().removeHandler(handler)
        handler.close()
        if inbox is not None:
            for event in inbox.wait_for_events(2):
                print("inbox got:", event["level"], event["logentry"].get("formatted")
                      or event["logentry"]["message"])
        return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
