"""A Django-style ``LOGGING`` dict applied with ``logging.config.dictConfig``.

In a Django project this dict goes in settings.py as ``LOGGING``; Django calls dictConfig
itself. ``level`` on the handler is the event threshold; ``breadcrumb_level`` sets what is kept
as breadcrumbs. The DSN comes from ``SENTRY_DSN`` when the ``dsn`` key is left out.

    python examples/django_logging.py
"""

from __future__ import annotations

import logging
import logging.config
import sys
from typing import Any

from _inbox import dsn_or_local_inbox


def make_logging(dsn: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "sentry": {
                "class": "sentry_log_handler.SentryHandler",
                "level": "ERROR",
                "dsn": dsn,
                "breadcrumb_level": "INFO",
                "environment": "staging",
                "release": "mysite@2.3.0",
                "tags": {"service": "web"},
            },
        },
        "root": {"handlers": ["console", "sentry"], "level": "INFO"},
        "loggers": {
            "django.request": {"handlers": ["sentry"], "level": "ERROR", "propagate": False},
        },
    }


def main() -> int:
    with dsn_or_local_inbox() as (dsn, inbox):
        logging.config.dictConfig(make_logging(dsn))
        logging.getLogger("mysite.views").info("GET /orders/42")
        logging.getLogger("django.request").error(
            "Internal Server Error: %s", "/orders/42",
            extra={"tags": ["endpoint:/orders", "method:GET"], "status_code": 500},
        )
        sentry = next(h for h in logging.getLogger().handlers if h.get_name() == "sentry")
        delivered = sentry.flush(10)  # type: ignore[call-arg]
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        if inbox is not None:
            (event,) = inbox.wait_for_events(1)
            print("inbox got:", event["logger"], event["tags"])
        return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
