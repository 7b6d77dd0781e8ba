"""Delivery guarantees under faults (issue 5): SentryHandler against the inbox's fault modes.

One test per row of the issue's fault table (``test_row_*``), then the rules behind them:
retries, rate limits, client reports, worker hardening, secrecy and spool permissions.

Everything is asserted by ordering and counting, never by how long something took: where a
scenario needs "while the endpoint is busy", the inbox holds its answer on an event (or a long
``Fault.delay``) that the test releases after the calls under test have returned. Retry
back-off is shortened (``FAST``) wherever the row is about *whether* something is retried,
not about the schedule; the "refusing for 5 s" row runs with the production defaults, since
those are what the product promises. Every handler is closed and its worker thread joined by
the test that made it; every child process is waited for (``subprocess.run`` kills it on
timeout).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

import sentry_log_handler.client as client_module
from sentry_log_handler import SentryHandler
from sentry_log_handler.inbox import Fault, Inbox, RequestInfo
from sentry_log_handler.normalize import encode_event

FAST: dict[str, Any] = {"retry_backoff": 0.01, "retry_backoff_max": 0.05}
CHILD = str(Path(__file__).with_name("delivery_child.py"))
RFC3339_SECONDS = re.compile(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
# Only guards against a hang (a broken test fails instead of blocking the suite).
GUARD = 30.0


@pytest.fixture(autouse=True)
def _no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)


@contextmanager
def sentry(dsn: str, **options: Any) -> Iterator[tuple[logging.Logger, SentryHandler]]:
    """A logger with its own SentryHandler; closed, and its worker joined, on the way out."""
    logger = logging.getLogger(f"delivery.{uuid.uuid4().hex}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = SentryHandler(dsn, **options)
    logger.addHandler(handler)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        handler.close()
        join_worker(handler)


def join_worker(handler: SentryHandler) -> None:
    thread = handler.client.worker._thread
    if thread is not None:
        thread.join(GUARD)
        assert not thread.is_alive(), "the worker thread did not stop after close()"


def messages(inbox: Inbox) -> list[str]:
    return sorted(e["logentry"].get("formatted", e["logentry"]["message"]) for e in inbox.events)


def event_ids(inbox: Inbox) -> list[str]:
    return [e["event_id"] for e in inbox.events]


def event_requests(inbox: Inbox) -> list[RequestInfo]:
    """Requests that carried an event (client-report-only envelopes left out)."""
    return [r for r in inbox.requests if r.envelope is not None and r.envelope.events]


def discarded(inbox: Inbox) -> dict[tuple[str, str], int]:
    """Sum of every client report the inbox got, standalone or riding on an event."""
    totals: dict[tuple[str, str], int] = {}
    for report in inbox.client_reports:
        for entry in report["discarded_events"]:
            key = (entry["reason"], entry["category"])
            totals[key] = totals.get(key, 0) + entry["quantity"]
    return totals


def spool_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".envelope"))


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    return subprocess.run(
        [sys.executable, CHILD, *args], capture_output=True, text=True, env=env, timeout=60
    )


def held_answer(fault: Fault) -> tuple[threading.Event, list[float], Callable[[int], Any]]:
    """A responder answering the FIRST request with ``fault`` only once the gate is set.

    Returns (gate, answered_at, responder): ``answered_at`` gets the wall time just before
    the fault is handed back, i.e. before the client can have seen it. The first answer
    waits for the gate, so the calls under test are all queued before it arrives.
    """
    gate = threading.Event()
    answered_at: list[float] = []

    def responder(index: int) -> Optional[Fault]:
        if index != 0:
            return None
        gate.wait(GUARD)
        answered_at.append(time.time())
        return fault

    return gate, answered_at, responder


# -- the fault table ------------------------------------------------------------------------


def test_row_503_on_half_the_requests_all_delivered(inbox: Inbox) -> None:
    inbox.set_responder(lambda i: Fault(status=503) if i % 2 == 0 else None)
    with sentry(inbox.dsn, **FAST) as (log, handler):
        for i in range(20):
            log.error("e%d", i)
        assert handler.flush(GUARD) is True
        stats = handler.client.stats()
    assert messages(inbox) == sorted(f"e{i}" for i in range(20))
    assert len(set(event_ids(inbox))) == 20
    assert [r.status for r in inbox.requests] == [503, 200] * 20
    assert stats["delivered"] == 20
    assert stats["dropped"] == {}


def test_row_refusing_connections_for_5s_default_retries(inbox: Inbox) -> None:
    """Default back-off (0.5 s doubling, 5 retries) spans at least 7.75 s: longer than 5 s."""
    inbox.refuse()
    timer = threading.Timer(5.0, inbox.accept)
    timer.start()
    try:
        with sentry(inbox.dsn) as (log, handler):
            for i in range(10):
                log.error("e%d", i)
            assert handler.flush(60) is True
            stats = handler.client.stats()
    finally:
        timer.cancel()
        timer.join()
    assert messages(inbox) == sorted(f"e{i}" for i in range(10))
    assert [r.status for r in inbox.requests] == [200] * 10  # refused attempts never arrive
    assert stats["delivered"] == 10
    assert stats["dropped"] == {}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Sentry-Rate-Limits": "2::organization"},
        {"Retry-After": "2"},  # no rate-limit header: Retry-After, for every category
    ],
    ids=["x-sentry-rate-limits", "retry-after"],
)
def test_row_429_one_request_in_window_drops_reported_after(
    inbox: Inbox, headers: dict[str, str]
) -> None:
    window = 2.0
    gate, answered_at, responder = held_answer(Fault(status=429, headers=headers))
    inbox.set_responder(responder)
    with sentry(inbox.dsn, **FAST) as (log, handler):
        try:
            for i in range(20):
                log.error("e%d", i)
        finally:
            gate.set()
        handler.flush(GUARD)
        # The drops are reported once the limit lifts (it covers client reports too).
        inbox.wait_for(lambda: discarded(inbox), timeout=GUARD)
        stats = handler.client.stats()
        log.error("after the window")
        assert handler.flush(GUARD) is True
    first, *later = inbox.requests
    assert first.status == 429 and len(first.envelope.events) == 1  # type: ignore[union-attr]
    assert later, "the client report never came"
    # Nothing else during the window; the 429 itself was not retried. (The client's window
    # starts after answered_at, on the monotonic clock; 0.05 s covers wall-clock slewing.)
    assert all(r.time >= answered_at[0] + window - 0.05 for r in later)
    assert discarded(inbox) == {("ratelimit_backoff", "error"): 19}
    assert stats["dropped"] == {"ratelimit_backoff": 19}
    assert stats["rejected_by_server"] == 1  # a 429 is counted by Relay, not reported again
    assert messages(inbox) == ["after the window"]


def test_row_connection_closed_mid_answer_is_retried(inbox: Inbox) -> None:
    inbox.inject(Fault(close=True))
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("once")
        assert handler.flush(GUARD) is True
        stats = handler.client.stats()
    first, second = inbox.requests
    assert (first.status, second.status) == (None, 200)
    # The retry is the same envelope: Sentry dedupes by event_id if the first got through.
    assert first.envelope is not None and second.envelope is not None
    assert first.envelope.headers["event_id"] == second.envelope.headers["event_id"]
    assert messages(inbox) == ["once"]
    assert stats["dropped"] == {}


def test_row_413_dropped_counted_not_retried(inbox: Inbox) -> None:
    inbox.fail(413)
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("too large")
        handler.flush(GUARD)
        inbox.wait_for(lambda: discarded(inbox), timeout=GUARD)
        stats = handler.client.stats()
    (request,) = event_requests(inbox)  # exactly one attempt
    assert request.status == 413
    assert inbox.events == []
    assert stats["dropped"] == {"send_error": 1}
    assert discarded(inbox) == {("send_error", "error"): 1}


def test_row_restart_with_spool_delivers_exactly_once(inbox: Inbox, tmp_path: Path) -> None:
    """Child 1 logs to a refused endpoint and exits normally (the atexit hook spools what is
    queued, cutting its retries short); child 2, with the endpoint up, sends the spool."""
    spool = tmp_path / "spool"
    inbox.refuse()
    first = run_child("log", inbox.dsn, str(spool), "20")  # production defaults
    assert first.returncode == 0, first.stderr
    assert "lost" not in first.stderr, first.stderr
    assert len(spool_files(spool)) == 20
    assert_second_process_resends_once(inbox, spool)


def assert_second_process_resends_once(inbox: Inbox, spool: Path) -> None:
    """Endpoint up again: a new process flushes the 20 spooled envelopes, each exactly once."""
    inbox.accept()
    second = run_child("flush", inbox.dsn, str(spool))
    assert second.returncode == 0, second.stderr
    stats = json.loads(second.stdout)
    assert stats["flushed"] is True
    assert stats["resent_from_spool"] == 20
    assert messages(inbox) == sorted(f"restart e{i}" for i in range(20))
    assert len(set(event_ids(inbox))) == 20
    assert os.listdir(spool) == []


def test_row_kill_9_after_spooling_delivers_exactly_once(inbox: Inbox, tmp_path: Path) -> None:
    """max_retries=0 in child 1 only gets the envelopes to disk sooner (no 8 s back-off)."""
    spool = tmp_path / "spool"
    inbox.refuse()
    first = run_child("kill", inbox.dsn, str(spool), "20", json.dumps({"max_retries": 0}))
    assert first.returncode == -signal.SIGKILL, (first.returncode, first.stderr)
    assert len(spool_files(spool)) == 20
    assert_second_process_resends_once(inbox, spool)


def test_row_slow_endpoint_caller_never_waits(inbox: Inbox) -> None:
    inbox.set_fault(Fault(delay=5.0))  # the "5 s per answer"
    with sentry(inbox.dsn, shutdown_timeout=0.3) as (log, handler):
        for i in range(200):
            log.error("e%d", i)
        # All 200 calls have returned while the first answer is still pending.
        assert inbox.request_count <= 1
        assert handler.flush(0.3) is False
        assert handler.client.close() is False  # gave up after shutdown_timeout
        inbox.set_fault(None)
        inbox.refuse()  # cuts the pending answer short ...
        inbox.accept()  # ... so the worker can finish the queue and stop (joined on exit)


# -- retries --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried_then_delivered(inbox: Inbox, status: int) -> None:
    inbox.fail(status, times=2)
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("eventually")
        assert handler.flush(GUARD) is True
        stats = handler.client.stats()
    assert [r.status for r in inbox.requests] == [status, status, 200]
    assert messages(inbox) == ["eventually"]
    assert stats["dropped"] == {}


def test_retries_are_bounded_then_single_attempts_until_up(inbox: Inbox) -> None:
    inbox.set_fault(Fault(status=503))
    with sentry(inbox.dsn, max_retries=2, **FAST) as (log, handler):
        log.error("first")
        handler.flush(GUARD)
        log.error("second")
        handler.flush(GUARD)
        inbox.set_fault(None)
        log.error("third")
        assert handler.flush(GUARD) is True
        stats = handler.client.stats()
    per_message: dict[str, int] = {}
    for request in event_requests(inbox):
        assert request.envelope is not None
        message = request.envelope.events[0]["logentry"]["message"]
        per_message[message] = per_message.get(message, 0) + 1
    assert per_message == {"first": 3, "second": 1, "third": 1}
    assert stats["dropped"] == {"send_error": 2}
    assert messages(inbox) == ["third"]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_4xx_is_not_retried(inbox: Inbox, status: int, capsys: pytest.CaptureFixture[str]) -> None:
    inbox.fail(status)
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("rejected")
        handler.flush(GUARD)
        inbox.wait_for(lambda: discarded(inbox), timeout=GUARD)
        stats = handler.client.stats()
    (request,) = event_requests(inbox)
    assert request.status == status
    assert stats["dropped"] == {"send_error": 1}
    assert capsys.readouterr().err.count(f"Sentry answered HTTP {status}") == 1


# -- rate-limit categories ------------------------------------------------------------------


def test_transaction_limit_does_not_block_events(inbox: Inbox) -> None:
    inbox.inject(Fault(status=429, headers={"X-Sentry-Rate-Limits": "60:transaction:organization"}))
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("rejected by the 429")
        handler.flush(GUARD)
        for i in range(5):
            log.error("e%d", i)
        assert handler.flush(GUARD) is True
        limits = handler.client.transport.rate_limiter.snapshot()  # type: ignore[union-attr]
        stats = handler.client.stats()
    assert set(limits) == {"transaction"}
    assert messages(inbox) == [f"e{i}" for i in range(5)]
    assert stats["dropped"] == {}
    assert stats["rejected_by_server"] == 1


def test_error_limit_blocks_events_but_not_their_client_report(inbox: Inbox) -> None:
    """Reports are ``internal``: an ``error`` limit must not hide the drops it causes."""
    inbox.inject(Fault(status=429, headers={"X-Sentry-Rate-Limits": "60:error:organization"}))
    with sentry(inbox.dsn, **FAST) as (log, handler):
        log.error("rejected by the 429")
        handler.flush(GUARD)
        for i in range(5):
            log.error("e%d", i)
        handler.flush(GUARD)
        inbox.wait_for(lambda: discarded(inbox), timeout=GUARD)  # while the limit runs
    assert len(event_requests(inbox)) == 1
    assert inbox.events == []
    assert discarded(inbox) == {("ratelimit_backoff", "error"): 5}


# -- client reports -------------------------------------------------------------------------


def test_client_report_payload_rides_on_next_event_then_alone(inbox: Inbox) -> None:
    release = threading.Event()

    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> Optional[dict[str, Any]]:
        if event["logentry"]["message"].startswith("drop"):
            release.wait(GUARD)  # hold the worker until "keep" is queued behind this one
            return None
        return event

    with sentry(inbox.dsn, before_send=before_send) as (log, handler):
        log.error("drop one")
        log.error("keep")
        release.set()
        assert handler.flush(GUARD) is True
        log.error("drop two")
        handler.flush(GUARD)
        inbox.wait_for(lambda: len(inbox.requests) >= 2, timeout=GUARD)
    riding, alone = inbox.requests
    assert riding.envelope is not None and alone.envelope is not None
    # 1. The pending count rides on the next event's envelope.
    assert riding.envelope.item_types() == ["event", "client_report"]
    assert {"event_id", "sent_at", "sdk"} <= set(riding.envelope.headers)
    # 2. With nothing else to send, the report goes alone (no event_id in the header).
    assert alone.envelope.item_types() == ["client_report"]
    assert "event_id" not in alone.envelope.headers
    assert {"sent_at", "sdk"} <= set(alone.envelope.headers)
    for request in (riding, alone):
        assert request.envelope is not None
        (report,) = request.envelope.client_reports
        assert set(report) == {"timestamp", "discarded_events"}
        assert RFC3339_SECONDS.match(report["timestamp"])
        assert report["discarded_events"] == [
            {"reason": "before_send", "category": "error", "quantity": 1}
        ]
    assert messages(inbox) == ["keep"]


# -- worker hardening -----------------------------------------------------------------------


def test_worker_survives_an_exception_inside_and_counts_the_loss(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def encode_or_fail(event: dict[str, Any], **kwargs: Any) -> bytes:
        if "poison" in event["logentry"]["message"]:
            raise RuntimeError("encoder broke")
        return encode_event(event, **kwargs)

    monkeypatch.setattr(client_module, "encode_event", encode_or_fail)
    with sentry(inbox.dsn) as (log, handler):
        log.error("poison 1")
        log.error("fine 1")
        log.error("poison 2")
        log.error("fine 2")
        handler.flush(GUARD)
        thread = handler.client.worker._thread
        assert thread is not None and thread.is_alive()
        inbox.wait_for(lambda: sum(discarded(inbox).values()) >= 2, timeout=GUARD)
        log.error("fine 3")
        assert handler.flush(GUARD) is True
        assert handler.client.worker._thread is thread  # the same thread kept going
        stats = handler.client.stats()
    assert messages(inbox) == ["fine 1", "fine 2", "fine 3"]
    assert stats["dropped"] == {"internal_sdk_error": 2}
    assert discarded(inbox) == {("internal_sdk_error", "error"): 2}
    err = capsys.readouterr().err
    assert err.count("internal error in worker: RuntimeError: encoder broke") == 1  # once
    assert stats["suppressed_errors"] == 1


def test_before_send_that_raises_sends_the_event_unchanged(
    inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("bug in the callback")

    with sentry(inbox.dsn, before_send=before_send) as (log, handler):
        for i in range(3):
            log.error("e%d", i)
        assert handler.flush(GUARD) is True
    assert messages(inbox) == ["e0", "e1", "e2"]
    assert capsys.readouterr().err.count("ValueError: bug in the callback") == 1


# -- spool ----------------------------------------------------------------------------------


def test_spool_in_process_outage_then_flush_resends(inbox: Inbox, tmp_path: Path) -> None:
    """flush(timeout) covers the spool: once the endpoint is back it re-sends at once, even
    inside the pause that follows a failed attempt."""
    inbox.refuse()
    with sentry(inbox.dsn, spool_dir=str(tmp_path / "spool"), max_retries=0) as (log, h):
        for i in range(5):
            log.error("e%d", i)
        assert h.flush(GUARD) is False
        assert h.client.stats()["in_spool"] == 5
        inbox.accept()
        assert h.flush(GUARD) is True
        stats = h.client.stats()
    assert messages(inbox) == [f"e{i}" for i in range(5)]
    assert stats["resent_from_spool"] == 5 and stats["in_spool"] == 0


@pytest.mark.parametrize("category", ["error", "default"])
def test_spool_resend_honours_event_rate_limits(
    inbox: Inbox, tmp_path: Path, category: str
) -> None:
    """Spooled envelopes are events: a limit on ``error`` or on ``default`` stops re-sending
    (they wait in the spool, not dropped), as it stops new events."""
    inbox.refuse()
    with sentry(inbox.dsn, spool_dir=str(tmp_path / "spool"), max_retries=0) as (log, h):
        for i in range(3):
            log.error("e%d", i)
        h.flush(GUARD)
        inbox.inject(Fault(headers={"X-Sentry-Rate-Limits": f"60:{category}:organization"}))
        inbox.accept()
        assert h.flush(GUARD) is False
        stats = h.client.stats()
    assert len(event_requests(inbox)) == 1  # the answer that announced the limit
    assert stats["resent_from_spool"] == 1 and stats["in_spool"] == 2
    assert stats["dropped"] == {}


def test_close_during_a_slow_answer_spools_the_rest(inbox: Inbox, tmp_path: Path) -> None:
    """close() gives up after shutdown_timeout and spools the queue; the answer it was
    waiting for still arrives, the worker then stops, and a later client sends the rest:
    every event exactly once."""
    spool = str(tmp_path / "spool")
    inbox.set_fault(Fault(delay=1.0))
    with sentry(inbox.dsn, spool_dir=spool, shutdown_timeout=0.1) as (log, handler):
        for i in range(5):
            log.error("e%d", i)
        assert handler.client.close() is False
        inbox.set_fault(None)
        join_worker(handler)  # the slow answer arrives, then the thread must end
    with sentry(inbox.dsn, spool_dir=spool) as (_, later):
        assert later.flush(GUARD) is True
    assert messages(inbox) == [f"e{i}" for i in range(5)]
    assert len(set(event_ids(inbox))) == 5


def test_two_processes_sharing_a_spool_send_each_file_once(inbox: Inbox, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    inbox.refuse()
    first = run_child("log", inbox.dsn, str(spool), "30", json.dumps({"max_retries": 0}))
    assert first.returncode == 0, first.stderr
    assert len(spool_files(spool)) == 30
    inbox.accept()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    command = [sys.executable, CHILD, "flush", inbox.dsn, str(spool)]
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    try:
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0, 0], outputs
    resent = [json.loads(out)["resent_from_spool"] for out, _ in outputs]
    assert sum(resent) == 30
    assert messages(inbox) == sorted(f"restart e{i}" for i in range(30))
    assert len(set(event_ids(inbox))) == 30
    assert os.listdir(spool) == []


def test_spool_files_0600_in_a_0700_directory(inbox: Inbox, tmp_path: Path) -> None:
    spool = tmp_path / "new" / "spool"
    inbox.refuse()
    old_umask = os.umask(0)  # nothing may rely on the umask to be private
    try:
        with sentry(inbox.dsn, spool_dir=str(spool), max_retries=0) as (log, handler):
            for i in range(3):
                log.error("e%d", i)
            handler.flush(GUARD)
    finally:
        os.umask(old_umask)
    files = spool_files(spool)
    assert len(files) == 3
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700
    for name in files:
        assert stat.S_IMODE(os.stat(spool / name).st_mode) == 0o600


# -- security -------------------------------------------------------------------------------


def test_dsn_secret_never_shown(
    inbox: Inbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cr3t" + uuid.uuid4().hex
    dsn = f"http://{inbox.public_key}:{secret}@127.0.0.1:{inbox.port}/{inbox.project_id}"
    spool = tmp_path / "spool"
    shown: list[str] = []
    inbox.fail(400)
    with sentry(dsn, debug=True, **FAST) as (log, plain):
        log.error("rejected")  # HTTP 400: reported on stderr
        plain.flush(GUARD)
        inbox.refuse()
        log.error("refused")  # connection error: reported on stderr
        plain.flush(GUARD)
        client = plain.client
        shown += [
            repr(plain),
            repr(client),
            repr(client.transport),
            repr(client.options),
            str(client.options.dsn),
            repr(client.options.dsn),
            str(client.stats()),
        ]
    with sentry(dsn, debug=True, spool_dir=str(spool), max_retries=0) as (log, spooling):
        for i in range(3):
            log.error("spooled %d", i)
        spooling.flush(GUARD)
        shown += [repr(spooling), repr(spooling.client.spool)]
        names = os.listdir(spool)
        contents = [(spool / name).read_bytes() for name in names]
    inbox.accept()
    with sentry(dsn, spool_dir=str(spool)) as (_, later):
        assert later.flush(GUARD) is True
    shown.append(capsys.readouterr().err)
    assert "Sentry answered HTTP 400" in shown[-1] and "delivery failed" in shown[-1]
    assert len(names) == 3
    shown += names
    for text in shown:
        assert secret not in text
        assert "sentry_secret" not in text
    for data in contents:  # not even inside the spooled envelopes
        assert secret.encode() not in data
    # The secret is really in use (the server sees it in the auth header), so the above
    # checks a DSN that has one.
    auth = inbox.requests[-1].headers.get("X-Sentry-Auth", "")
    assert f"sentry_secret={secret}" in auth
    assert len(inbox.events) == 3
