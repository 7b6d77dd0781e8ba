"""Fault table: every row of issue 5's fault-injection table, run against the in-process
inbox with ``SentryHandler``, printed as Markdown; exits 1 if any row misses its expectation.

Commands (from the repository root, with the package installed)::

    python benchmarks/faults.py                          # full run, ~2 min (the 429 row alone
                                                         # waits out its 60 s window)
    python benchmarks/faults.py --rate-limit-seconds 5   # quick run, ~1 min
    python benchmarks/faults.py --rows 503,413           # some rows; --list shows the names

Every row uses the production defaults (``max_retries=5``, ``retry_backoff=0.5`` s doubling
with jitter, capped at 10 s; ``shutdown_timeout=2`` s; queue and spool bounds), except:

* ``429``: the window is ``--rate-limit-seconds`` (default 60, as in the issue), so a quick run
  is possible. The first answer is held until every event is queued, so "at most one request
  in the window" is about the client, not about how fast this script logs.
* ``413``: the same hold, so the N rejected envelopes are exactly the first N requests.
* ``slow``: ``flush(1.0)`` is the timeout under test; ``close()`` uses the default
  ``shutdown_timeout``. Caller cost is the median ``perf_counter_ns`` per ``logger.error``
  over 2 000 calls, against a normal inbox and then against one that answers after 5 s.
* ``restart`` / ``kill-9``: real processes (``tests/delivery_child.py``), sharing a
  ``spool_dir`` in a temporary directory. The first child logs to a refused endpoint and
  exits normally (its atexit hook spools what is queued), or SIGKILLs itself once all
  envelopes are on disk; the endpoint comes up; a second child flushes the spool.

Columns: events sent; delivered (distinct event ids the inbox stored; a duplicate fails the
row); dropped by reason (the clients' ``stats()["dropped"]``, plus ``429 rejected``, which
Relay counts itself and the client does not report again); requests made (every request the
inbox answered or dropped, client reports included).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sentry_log_handler import SentryHandler
from sentry_log_handler.inbox import Fault, Inbox

_GUARD = 120.0  # upper bound on any wait: a broken row fails instead of hanging


@dataclass
class Row:
    scenario: str
    expected: str
    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    ok: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# -- helpers ------------------------------------------------------------------------------------


@contextmanager
def _handler(dsn: str, **options: Any) -> Iterator[tuple[logging.Logger, SentryHandler]]:
    logger = logging.getLogger(f"faults.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = SentryHandler(dsn, **options)
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        handler.close()
        thread = handler.client.worker._thread
        if thread is not None:
            thread.join(_GUARD)


def _count_delivery(row: Row, inbox: Inbox) -> None:
    ids = [event["event_id"] for event in inbox.events]
    row.delivered = len(set(ids))
    row.duplicates = len(ids) - len(set(ids))
    row.requests = inbox.request_count


def _add_drops(row: Row, stats: dict[str, Any]) -> None:
    for reason, quantity in stats.get("dropped", {}).items():
        row.dropped[reason] = row.dropped.get(reason, 0) + quantity
    rejected = stats.get("rejected_by_server", 0)
    if rejected:
        row.dropped["429 rejected"] = row.dropped.get("429 rejected", 0) + rejected


def _reported(inbox: Inbox) -> dict[str, int]:
    """Discarded quantities per reason over every client report the inbox got."""
    totals: dict[str, int] = {}
    for report in inbox.client_reports:
        for entry in report["discarded_events"]:
            totals[entry["reason"]] = totals.get(entry["reason"], 0) + entry["quantity"]
    return totals


def _held_first(
    first: Fault, then: Callable[[int], Optional[Fault]] = lambda i: None
) -> tuple[threading.Event, list[float], Callable[[int], Optional[Fault]]]:
    """Responder: request 0 waits for the gate, then gets ``first``; the rest ``then(i)``."""
    gate = threading.Event()
    answered_at: list[float] = []

    def responder(index: int) -> Optional[Fault]:
        if index == 0:
            gate.wait(_GUARD)
            answered_at.append(time.time())
            return first
        return then(index)

    return gate, answered_at, responder


def _all_delivered(row: Row) -> bool:
    return row.delivered == row.sent and row.duplicates == 0


# -- rows ---------------------------------------------------------------------------------------


def row_503(args: argparse.Namespace) -> Row:
    row = Row("503 on half the requests", "100 % delivered", sent=10)
    with Inbox() as inbox:
        inbox.set_responder(lambda i: Fault(status=503) if i % 2 == 0 else None)
        with _handler(inbox.dsn) as (log, handler):
            for i in range(row.sent):
                log.error("e%d", i)
            flushed = handler.flush(_GUARD)
            _add_drops(row, handler.client.stats())
        _count_delivery(row, inbox)
    row.ok = flushed and _all_delivered(row) and not row.dropped
    return row


def row_refused(args: argparse.Namespace) -> Row:
    row = Row("endpoint refusing connections for 5 s, then up", "100 % delivered", sent=20)
    with Inbox() as inbox:
        inbox.refuse()
        timer = threading.Timer(5.0, inbox.accept)
        timer.start()
        try:
            with _handler(inbox.dsn) as (log, handler):
                for i in range(row.sent):
                    log.error("e%d", i)
                flushed = handler.flush(_GUARD)
                _add_drops(row, handler.client.stats())
        finally:
            timer.cancel()
            timer.join()
        _count_delivery(row, inbox)
    row.ok = flushed and _all_delivered(row) and not row.dropped
    return row


def row_429(args: argparse.Namespace) -> Row:
    window = args.rate_limit_seconds
    header = f"{window:g}::organization"
    row = Row(
        f"429 with `X-Sentry-Rate-Limits: {header}`",
        "at most one request in the window; drops counted, reported once the limit lifts",
        sent=20,
    )
    with Inbox() as inbox:
        gate, answered_at, responder = _held_first(
            Fault(status=429, headers={"X-Sentry-Rate-Limits": header})
        )
        inbox.set_responder(responder)
        with _handler(inbox.dsn) as (log, handler):
            for i in range(row.sent):
                log.error("e%d", i)
            gate.set()
            handler.flush(_GUARD)
            try:
                inbox.wait_for(lambda: inbox.client_reports, timeout=window + _GUARD)
            except TimeoutError:
                row.notes.append("no client report arrived")
            _add_drops(row, handler.client.stats())
        _count_delivery(row, inbox)
        requests = inbox.requests
    start = answered_at[0] if answered_at else 0.0
    in_window = [r for r in requests if r.time < start + window]
    reports = _reported(inbox)
    report_after = [
        r.time - start for r in requests[1:] if r.envelope and r.envelope.client_reports
    ]
    if report_after:
        row.notes.append(
            f"{len(in_window)} request(s) in the {window:g} s window; first client report "
            f"{report_after[0]:.1f} s after the 429, reporting {reports}"
        )
    row.ok = (
        len(in_window) == 1
        and row.dropped == {"ratelimit_backoff": row.sent - 1, "429 rejected": 1}
        and reports == {"ratelimit_backoff": row.sent - 1}
    )
    return row


def row_close(args: argparse.Namespace) -> Row:
    row = Row("connection closed mid-answer (every other request)", "retried, delivered", sent=10)
    with Inbox() as inbox:
        inbox.set_responder(lambda i: Fault(close=True) if i % 2 == 0 else None)
        with _handler(inbox.dsn) as (log, handler):
            for i in range(row.sent):
                log.error("e%d", i)
            flushed = handler.flush(_GUARD)
            _add_drops(row, handler.client.stats())
        _count_delivery(row, inbox)
        dropped_connections = sum(1 for r in inbox.requests if r.status is None)
    row.notes.append(f"{dropped_connections} connection(s) closed without an answer, all retried")
    row.ok = flushed and _all_delivered(row) and not row.dropped and row.requests == 2 * row.sent
    return row


def row_413(args: argparse.Namespace) -> Row:
    row = Row("413", "dropped, counted send_error, not retried", sent=5)
    with Inbox() as inbox:
        gate, _, responder = _held_first(
            Fault(status=413), lambda i: Fault(status=413) if i < row.sent else None
        )
        inbox.set_responder(responder)
        with _handler(inbox.dsn) as (log, handler):
            for i in range(row.sent):
                log.error("e%d", i)
            gate.set()
            handler.flush(_GUARD)
            try:
                inbox.wait_for(lambda: _reported(inbox), timeout=_GUARD)
            except TimeoutError:
                row.notes.append("no client report arrived")
            _add_drops(row, handler.client.stats())
        _count_delivery(row, inbox)
        with_events = [r for r in inbox.requests if r.envelope and r.envelope.events]
    row.notes.append(
        f"{len(with_events)} request(s) carried an event, one per event; "
        f"client reports received: {_reported(inbox)}"
    )
    row.ok = (
        row.delivered == 0
        and len(with_events) == row.sent
        and row.dropped == {"send_error": row.sent}
        and _reported(inbox) == {"send_error": row.sent}
    )
    return row


# The same child script as the test suite's spool rows: one definition of "a process that
# logs and exits / is killed / re-sends the spool".
_CHILD = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "delivery_child.py"
)


def _run_child(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    return subprocess.run(
        [sys.executable, _CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=_GUARD,
    )


def _spooled(directory: str) -> int:
    try:
        return sum(1 for name in os.listdir(directory) if name.endswith(".envelope"))
    except FileNotFoundError:
        return 0


def _restart_row(row: Row, mode: str) -> Row:
    with Inbox() as inbox, tempfile.TemporaryDirectory(prefix="faults-spool-") as tmp:
        spool = os.path.join(tmp, "spool")
        inbox.refuse()
        start = time.monotonic()
        first = _run_child(mode, inbox.dsn, spool, str(row.sent))
        spooled = _spooled(spool)
        expected_code = 0 if mode == "log" else -signal.SIGKILL
        if first.returncode != expected_code:
            row.notes.append(f"child 1 exited {first.returncode}: {first.stderr.strip()[-300:]}")
        row.notes.append(
            f"child 1 ({'exit' if mode == 'log' else 'kill -9'}) left {spooled} envelope(s) "
            f"in the spool after {time.monotonic() - start:.1f} s"
        )
        inbox.accept()
        second = _run_child("flush", inbox.dsn, spool)
        stats: dict[str, Any] = {}
        if second.returncode == 0 and second.stdout.strip():
            stats = json.loads(second.stdout.strip().splitlines()[-1])
            _add_drops(row, stats)
        else:
            row.notes.append(f"child 2 exited {second.returncode}: {second.stderr.strip()[-300:]}")
        left = os.listdir(spool) if os.path.isdir(spool) else []
        _count_delivery(row, inbox)
    row.notes.append(
        f"child 2 flushed={stats.get('flushed')}, resent_from_spool="
        f"{stats.get('resent_from_spool')}, files left={len(left)}"
    )
    row.ok = (
        first.returncode == expected_code
        and spooled == row.sent
        and stats.get("flushed") is True
        and _all_delivered(row)
        and not row.dropped
        and not left
    )
    return row


def row_restart(args: argparse.Namespace) -> Row:
    return _restart_row(
        Row(
            "endpoint down, process exits, restarts with endpoint up (`spool_dir`)",
            "100 % delivered exactly once",
            sent=20,
        ),
        "log",
    )


def row_kill(args: argparse.Namespace) -> Row:
    return _restart_row(
        Row(
            "the same, with `kill -9` after the envelopes are spooled",
            "100 % delivered exactly once",
            sent=20,
        ),
        "kill",
    )


def _caller_ns(log: logging.Logger, count: int) -> list[int]:
    timings = []
    clock = time.perf_counter_ns
    for i in range(count):
        start = clock()
        log.error("payment %s declined", "card", extra={"order_id": i})
        timings.append(clock() - start)
    return timings


def row_slow(args: argparse.Namespace) -> Row:
    calls = 2000
    row = Row(
        "slow endpoint (5 s per answer)",
        "caller cost within 10 % of normal; flush(1) and close() keep their timeouts",
        sent=2 * (calls + 200),
    )
    with Inbox() as inbox:
        with _handler(inbox.dsn) as (log, handler):
            _caller_ns(log, 200)  # warm-up
            handler.flush(_GUARD)
            normal = statistics.median(_caller_ns(log, calls))
            handler.flush(_GUARD)
            _add_drops(row, handler.client.stats())
        inbox.set_fault(Fault(delay=5.0))
        before = inbox.request_count
        with _handler(inbox.dsn) as (log, handler):
            _caller_ns(log, 200)  # warm-up (queued behind the first slow answer)
            slow = statistics.median(_caller_ns(log, calls))
            answered = inbox.request_count - before
            start = time.monotonic()
            flushed = handler.flush(1.0)
            flush_s = time.monotonic() - start
            start = time.monotonic()
            closed = handler.client.close()
            close_s = time.monotonic() - start
            # Release the endpoint: the pending answer still takes its 5 s, then the worker
            # delivers the backlog and stops (joined on the way out).
            inbox.set_fault(None)
        _add_drops(row, handler.client.stats())
        _count_delivery(row, inbox)
    ratio = slow / normal if normal else float("inf")
    row.notes.append(
        f"caller median {normal / 1000:.1f} µs normal vs {slow / 1000:.1f} µs slow "
        f"({ratio:.2f}x); {answered} answer(s) while logging {calls + 200} errors; "
        f"flush(1.0) -> {flushed} after {flush_s:.2f} s; close() -> {closed} after "
        f"{close_s:.2f} s (shutdown_timeout 2 s); the backlog was delivered once the "
        "endpoint was fast again"
    )
    row.ok = (
        ratio <= 1.10
        and answered <= 1
        and flushed is False
        and flush_s < 1.0 + 0.5
        and closed is False
        and close_s < 2.0 + 0.5
    )
    return row


ROWS: dict[str, Callable[[argparse.Namespace], Row]] = {
    "503": row_503,
    "refused": row_refused,
    "429": row_429,
    "close": row_close,
    "413": row_413,
    "restart": row_restart,
    "kill-9": row_kill,
    "slow": row_slow,
}


# -- main ---------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[Row]) -> str:
    lines = [
        "| scenario | events sent | delivered | dropped by reason | requests made | expected "
        "| ok |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        dropped = ", ".join(f"{k}: {v}" for k, v in sorted(row.dropped.items())) or "none"
        delivered = f"{row.delivered}"
        if row.duplicates:
            delivered += f" (+{row.duplicates} duplicate)"
        lines.append(
            f"| {_cell(row.scenario)} | {row.sent} | {delivered} | {_cell(dropped)} "
            f"| {row.requests} | {_cell(row.expected)} | {'yes' if row.ok else '**NO**'} |"
        )
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rate-limit-seconds",
        type=float,
        default=60.0,
        help="window of the 429 row's X-Sentry-Rate-Limits (default 60, as in the issue)",
    )
    parser.add_argument("--rows", help="comma-separated row names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the row names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(ROWS))
        return 0
    names = args.rows.split(",") if args.rows else list(ROWS)
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(ROWS)}")
    os.environ.pop("SENTRY_DSN", None)
    began = time.monotonic()
    rows = []
    for name in names:
        start = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        row = ROWS[name](args)
        row.seconds = time.monotonic() - start
        rows.append(row)
    total = time.monotonic() - began
    print(_table(rows))
    print()
    for row in rows:
        notes = "; ".join(row.notes)
        print(f"- {row.scenario}: {row.seconds:.1f} s" + (f"; {notes}" if notes else ""))
    print()
    failed = [row.scenario for row in rows if not row.ok]
    print(f"Total runtime: {total:.1f} s. " + (f"FAILED: {failed}" if failed else "All rows ok."))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
