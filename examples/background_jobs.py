"""A background-job worker reporting failures with tags and extra — the original job's use
cases (API error, email job failure, slow query) through plain ``logging`` calls.

    python examples/background_jobs.py
"""

from __future__ import annotations

import logging
import sys
import time

from _inbox import dsn_or_local_inbox

from sentry_log_handler import SentryHandler

log = logging.getLogger("jobs")


class DatabaseTimeout(Exception):
    pass


def fetch_users() -> None:
    raise DatabaseTimeout("connection timeout after 30000 ms")


def send_email(recipient: str, attempt: int) -> None:
    raise ConnectionRefusedError(f"SMTP refused for {recipient} (attempt {attempt})")


def run_jobs() -> None:
    # Track API errors
    try:
        fetch_users()
    except DatabaseTimeout:
        log.exception(
            "Database connection timeout",
            extra={"tags": ["endpoint:/api/users", "method:GET", "db:primary"],
                   "query_duration_ms": 30000, "connection_pool_size": 10},
        )
    # Monitor background jobs: retries are warnings until the last one fails
    for attempt in range(1, 4):
        try:
            send_email("user@example.com", attempt)
        except ConnectionRefusedError:
            if attempt < 3:
                log.info("email job retry %d", attempt)  # kept as a breadcrumb
                continue
            log.warning(
                "Email job failed after %d retries", attempt,
                extra={"tags": {"job": "send_email", "queue": "default", "retry": "3"},
                       "recipient": "user@example.com", "template": "welcome"},
            )
    # Performance monitoring
    started = time.perf_counter()
    duration_ms = 2500  # pretend the query took 2.5 s
    log.warning(
        "Slow query detected: %.1fs", duration_ms / 1000,
        extra={"tags": ["category:performance", "query:slow"],
               "query": "SELECT * FROM large_table...", "duration_ms": duration_ms,
               "measured_overhead_s": time.perf_counter() - started},
    )


def main() -> int:
    with dsn_or_local_inbox() as (dsn, inbox):
        handler = SentryHandler(dsn, level=logging.WARNING, environment="production")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        try:
            run_jobs()
            delivered = handler.flush(10)
        finally:
            log.removeHandler(handler)
            handler.close()
        if inbox is not None:
            for event in inbox.wait_for_events(3):
                print("inbox got:", event["level"], event["logentry"].get("formatted")
                      or event["logentry"]["message"], event.get("tags"))
        return 0 if delivered else 1


if __name__ == "__main__":
    sys.exit(main())
