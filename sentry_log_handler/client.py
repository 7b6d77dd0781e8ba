"""The shared pipeline: one client owns the options, the worker, the transport and the
counters, and every front door (``SentryHandler``, ``SentryProcessor``) feeds it captures.

Caller side: :meth:`Client.capture` samples and queues (no I/O, no locks held for long).
Worker side: :meth:`Client.prepare` builds the event, runs ``before_send``, serialises with
limits and scrubbing and frames the envelope; :meth:`Client.deliver` sends it, honouring rate
limits, retrying what may succeed later, spooling or counting what cannot be delivered.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import threading
import time
import weakref
from typing import Any, Optional

from . import reports
from .breadcrumbs import BreadcrumbBuffer
from .diagnostics import ErrorReporter
from .envelope import Item, encode_envelope
from .event import SDK_INFO, Capture, EventDefaults, build_event
from .normalize import encode_event
from .options import Options
from .serialize import dumps
from .spool import Claimed, Spool
from .transport import HttpResult, Transport
from .worker import Worker

__all__ = ["Client"]

_EVENT = "error"


class Client:
    """Options + worker + transport, shared by every front door that points at one DSN.

    With no DSN (none given and ``SENTRY_DSN`` unset) the client is disabled: captures are
    ignored at once, as with the official SDK, so code can log unconditionally.
    """

    def __init__(self, options: Optional[Options] = None, **kwargs: Any) -> None:
        if options is not None and kwargs:
            raise TypeError("pass either an Options object or keyword options, not both")
        self.options = options if options is not None else Options(**kwargs)
        opts = self.options
        self.errors = ErrorReporter(debug=opts.debug)
        self.defaults = EventDefaults(
            environment=opts.environment,
            release=opts.release,
            server_name=opts.server_name,
            tags=opts.tags,
            include_local_variables=opts.include_local_variables,
            in_app_include=opts.in_app_include,
            in_app_exclude=opts.in_app_exclude,
        )
        self.breadcrumbs = BreadcrumbBuffer(opts.max_breadcrumbs)
        self.drops = reports.DropCounter()
        self._stats_lock = threading.Lock()
        self._stats: dict[str, int] = {
            "delivered": 0,
            "rejected_by_server": 0,
            "spooled": 0,
            "resent_from_spool": 0,
        }
        self._stopping = threading.Event()
        self.transport: Optional[Transport] = None
        if opts.dsn is not None:
            self.transport = Transport(
                opts.dsn,
                connect_timeout=opts.connect_timeout,
                read_timeout=opts.read_timeout,
                http_proxy=opts.http_proxy,
                https_proxy=opts.https_proxy,
                ca_certs=opts.ca_certs,
            )
        self.worker: Worker[Capture] = Worker(
            self._process,
            max_items=opts.max_queue_size,
            max_bytes=opts.max_queue_bytes,
            on_drop=self._on_queue_overflow,
            on_idle=self._on_idle,
            on_error=lambda exc: self.errors.report_exception("worker", exc),
        )
        self._closed = False
        self._flushing = 0
        self._endpoint_down = False
        self._resend_paused_until = 0.0
        self.last_event_id: Optional[str] = None
        self.spool: Optional[Spool] = None
        if opts.spool_dir and self.transport is not None:
            self.spool = Spool(
                opts.spool_dir,
                max_files=opts.spool_max_files,
                max_bytes=opts.spool_max_bytes,
                on_drop=lambda n: self.drops.record(reports.CACHE_OVERFLOW, _EVENT, n),
            )
            self.spool.recover()
            if self.spool.pending_count():
                self.worker.start()  # re-send what an earlier process left behind
        _live_clients.add(self)

    def __repr__(self) -> str:
        return f"Client(dsn={self.options.dsn!r})"

    @property
    def enabled(self) -> bool:
        return self.transport is not None and not self._closed

    # -- caller side -------------------------------------------------------------------

    def capture(self, capture: Capture) -> Optional[str]:
        """Queue a capture for delivery; returns its event id, or None if it was not queued."""
        if self.transport is None or self._closed:
            return None
        rate = self.options.sample_rate
        if rate < 1.0 and random.random() >= rate:
            self.drops.record(reports.SAMPLE_RATE, _EVENT)
            return None
        if self.worker.submit(capture, capture.approximate_size()):
            self.last_event_id = capture.event_id
            return capture.event_id
        return None

    def _on_queue_overflow(self, capture: Capture) -> None:
        self.drops.record(reports.QUEUE_OVERFLOW, _EVENT)

    def is_worker_thread(self) -> bool:
        return self.worker.is_worker_thread()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` s for everything queued; True when all of it was delivered.

        With a spool, envelopes waiting there are re-sent too (back to back while a flush
        waits), and the answer is True only once the spool is empty as well.
        """
        if self.transport is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flushing += 1
        try:
            ok = self.worker.flush(timeout)
            spool = self.spool
            while ok and spool is not None and spool.pending_count():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                before = spool.pending_count()
                ok = self.worker.flush(left)
                if ok and spool.pending_count() >= before:
                    return False  # the endpoint still fails: the envelopes stay spooled
            return ok and (spool is None or spool.pending_count() == 0)
        finally:
            self._flushing -= 1

    def close(self, timeout: Optional[float] = None) -> bool:
        """Deliver what is queued (within ``timeout``), then stop. Idempotent.

        With a spool, retries stop at once and whatever is still queued when the time is up
        is written to the spool for the next process; without one it is lost (and said so
        on stderr by the exit hook).
        """
        if self._closed:
            return self.worker.pending == 0
        self._closed = True
        if timeout is None:
            timeout = self.options.shutdown_timeout
        if self.spool is not None:
            self._stopping.set()
        ok = self.worker.close(timeout)
        self._stopping.set()
        if self.spool is not None and self.worker.pending:
            self.worker.drain(self._spool_capture)
        if self.transport is not None and self.worker.pending == 0:
            self.transport.close()
        return ok and self.worker.pending == 0

    def _spool_capture(self, capture: Capture) -> None:
        envelope = self._prepare_counted(capture)
        if envelope is not None and self.spool is not None and self.spool.store(envelope):
            with self._stats_lock:
                self._stats["spooled"] += 1

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and tests: delivered, queued, dropped by reason."""
        with self._stats_lock:
            result: dict[str, Any] = dict(self._stats)
        result["queued"] = self.worker.pending
        result["dropped"] = self.drops.lifetime()
        result["suppressed_errors"] = self.errors.suppressed
        result["in_spool"] = self.spool.pending_count() if self.spool is not None else 0
        return result

    # -- worker side -------------------------------------------------------------------

    def _process(self, capture: Capture) -> bool:
        envelope = self._prepare_counted(capture)
        if envelope is None:
            return True
        return self.deliver(envelope)

    def _prepare_counted(self, capture: Capture) -> Optional[bytes]:
        """:meth:`prepare`, counting the event as ``internal_sdk_error`` when that raises.

        The worker survives the exception and reports it once on stderr, but the event is
        lost: uncounted, it would be missing from ``stats()`` and from the client reports.
        """
        try:
            return self.prepare(capture)
        except Exception:
            self.drops.record(reports.INTERNAL_SDK_ERROR, _EVENT)
            raise

    def prepare(self, capture: Capture) -> Optional[bytes]:
        """Capture → event → ``before_send`` → safe, limited JSON → envelope bytes.

        The envelope has no ``sent_at``: that is stamped at each send (PROTOCOL.md). Returns
        None when ``before_send`` dropped the event (counted as such).
        """
        event = build_event(capture, self.defaults)
        before_send = self.options.before_send
        if before_send is not None:
            hint: dict[str, Any] = {}
            if capture.exc is not None:
                hint["exc_info"] = (type(capture.exc), capture.exc, capture.exc.__traceback__)
            try:
                result = before_send(event, hint)
            except Exception as exc:
                self.errors.report_exception("before_send", exc)
                result = event
            if result is None:
                self.drops.record(reports.BEFORE_SEND, _EVENT)
                return None
            if isinstance(result, dict):
                event = result
            else:
                self.errors.report(
                    "before_send-result",
                    f"before_send returned {type(result).__name__}, not a dict or None;"
                    " the event is sent as built",
                )
        payload = encode_event(event, send_default_pii=self.options.send_default_pii)
        header = {"event_id": capture.event_id, "sdk": SDK_INFO}
        return encode_envelope(header, [Item(type="event", payload=payload)])

    def deliver(self, envelope: bytes) -> bool:
        """Send one event envelope with retries; count or spool it when it cannot be sent."""
        transport = self.transport
        if transport is None:
            return False
        if transport.rate_limiter.event_limited():
            self.drops.record(reports.RATELIMIT_BACKOFF, _EVENT)
            return False
        # After one envelope used up its retries the endpoint is taken as down: the next
        # ones get a single attempt each until one succeeds, so a long outage moves the
        # queue to the spool (or the drop counters) instead of stalling it for minutes.
        attempts = 1 if self._endpoint_down else self.options.max_retries + 1
        result = HttpResult(error="not sent")
        for attempt in range(attempts):
            result = self._post(envelope, with_reports=True)
            if result.ok:
                self._endpoint_down = False
                with self._stats_lock:
                    self._stats["delivered"] += 1
                return True
            if not result.retryable or attempt + 1 >= attempts:
                break
            if not self._backoff(attempt):
                break
        if result.retryable:
            self._endpoint_down = True
        if result.retryable and self.spool is not None:
            if self.spool.store(envelope):  # a failed store was counted by on_drop
                with self._stats_lock:
                    self._stats["spooled"] += 1
            self._resend_paused_until = time.monotonic() + self.options.retry_backoff_max
            return False
        self._count_failure(result)
        return False

    def _post(self, envelope: bytes, *, with_reports: bool) -> HttpResult:
        assert self.transport is not None
        entries: list[dict[str, Any]] = []
        if with_reports and self.options.send_client_reports:
            entries = self.drops.take(reports.MAX_REPORT_ENTRIES)
        body = _stamp_sent_at(envelope, entries)
        result = self.transport.post(body)
        if entries and not result.ok:
            self.drops.restore(entries)
        return result

    def _backoff(self, attempt: int) -> bool:
        """Sleep before the next attempt; False if the client is shutting down."""
        opts = self.options
        delay = min(opts.retry_backoff_max, opts.retry_backoff * (2**attempt))
        delay *= 0.5 + random.random() / 2
        return not self._stopping.wait(delay)

    def _count_failure(self, result: HttpResult) -> None:
        if result.status == 429:
            # Relay records outcomes for what it rate-limited itself: not a client report.
            with self._stats_lock:
                self._stats["rejected_by_server"] += 1
            return
        reason = reports.NETWORK_ERROR if result.status is None else reports.SEND_ERROR
        self.drops.record(reason, _EVENT)
        if result.status is not None:
            self.errors.report(
                f"http-{result.status}", f"Sentry answered HTTP {result.status}; event dropped"
            )
        elif result.error:
            self.errors.report("network", f"delivery failed: {result.error}")

    def _on_idle(self) -> Optional[float]:
        """Once the queue has drained: re-send from the spool, then send client reports."""
        wait = self._resend_from_spool()
        report_wait = self._send_client_report()
        if wait is None:
            return report_wait
        return wait if report_wait is None else min(wait, report_wait)

    def _resend_from_spool(self) -> Optional[float]:
        """Re-send spooled envelopes: one every 100 ms, or back to back while a flush waits.

        Returns when to come back: soon while it succeeds and files remain, later after a
        failure (the endpoint is still down), never when the spool is empty.
        """
        spool, transport = self.spool, self.transport
        if spool is None or transport is None or self._stopping.is_set():
            return None
        while True:
            now = time.monotonic()
            # A waiting flush tries at once: the endpoint may be back before the pause ends,
            # and flush(timeout) must not report failure without having tried.
            if now < self._resend_paused_until and not self._flushing:
                return self._resend_paused_until - now
            # Spooled envelopes are events: ``default`` limits them too, as in deliver().
            limiter = transport.rate_limiter
            limited = max(
                limiter.limited_until("error") or 0.0, limiter.limited_until("default") or 0.0
            )
            if limited:
                return max(0.1, limited - now)
            claimed = spool.claim()
            if claimed is None:
                return None
            if not self._resend(claimed):
                self._resend_paused_until = time.monotonic() + self.options.retry_backoff_max
                return self.options.retry_backoff_max
            if not self._flushing:
                return 0.1 if spool.pending_count() else None

    def _resend(self, claimed: Claimed) -> bool:
        """Send one spooled envelope; False when it must wait for a later attempt."""
        result = self._post(claimed.data, with_reports=False)
        if result.ok:
            claimed.done()
            self._endpoint_down = False
            with self._stats_lock:
                self._stats["delivered"] += 1
                self._stats["resent_from_spool"] += 1
            return True
        if result.retryable:
            claimed.release()
            return False
        claimed.discard()  # 4xx: it will never be accepted (429: Relay counted it)
        self._count_failure(result)
        return True

    def _send_client_report(self) -> Optional[float]:
        """Send pending drop counts in their own envelope (unless rate limited)."""
        if (
            self.transport is None
            or not self.options.send_client_reports
            or self.drops.total() == 0
        ):
            return None
        limited = self.transport.rate_limiter.limited_until("internal")
        if limited:
            return max(0.1, limited - time.monotonic())
        entries = self.drops.take(reports.MAX_REPORT_ENTRIES)
        payload = reports.client_report_payload(entries)
        if payload is None:
            return None
        item = Item(type="client_report", payload=dumps(payload))
        body = encode_envelope({"sdk": SDK_INFO}, [item])
        result = self.transport.post(_stamp_sent_at(body, []))
        if not result.ok:
            self.drops.restore(entries)
            return 5.0
        return None

    def _after_fork_in_child(self) -> None:
        if self.transport is not None:
            self.transport.reset()
        self.drops.after_fork()
        if self.transport is not None:
            self.transport.rate_limiter.after_fork()
        if self.spool is not None:
            self.spool.after_fork()
        self._stopping = threading.Event()
        self._closed = False
        self._flushing = 0

    def _shutdown_at_exit(self) -> None:
        if self._closed or self.transport is None:
            return
        timeout = self.options.shutdown_timeout
        start = time.monotonic()
        self.close(timeout)
        left = self.worker.pending
        if left:
            self.errors.write(
                f"{left} event(s) were not sent within shutdown_timeout={timeout:g}s"
                f" ({time.monotonic() - start:.1f}s spent); they are lost"
            )


def _stamp_sent_at(envelope: bytes, report_entries: list[dict[str, Any]]) -> bytes:
    """Add ``sent_at`` to the envelope header (and a client report item, if any).

    The header is compact JSON written by us, so the field is spliced in before its closing
    brace rather than parsed and re-encoded (a fifth of the cost, on every send).
    """
    newline = envelope.find(b"\n")
    if newline < 0:
        newline = len(envelope)
    header = envelope[:newline].rstrip()
    stamp = b'"sent_at":"' + _rfc3339(time.time()).encode() + b'"'
    if header.endswith(b"}") and b'"sent_at"' not in header:
        inner = header[:-1]
        header = inner + (b"," if inner.strip() != b"{" else b"") + stamp + b"}"
    else:  # not ours (or already stamped): take the slow, exact path
        fields = json.loads(header) if header else {}
        fields["sent_at"] = stamp[11:-1].decode()
        header = dumps(fields)
    parts = [header, b"\n", envelope[newline + 1 :]]
    payload = reports.client_report_payload(report_entries) if report_entries else None
    if payload is not None:
        data = dumps(payload)
        parts += [dumps({"type": "client_report", "length": len(data)}), b"\n", data, b"\n"]
    return b"".join(parts)


def _rfc3339(timestamp: float) -> str:
    seconds = int(timestamp)
    micros = int((timestamp - seconds) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for client in list(_live_clients):
        client._after_fork_in_child()


def _drain_at_exit() -> None:
    for client in list(_live_clients):
        try:
            client._shutdown_at_exit()
        except Exception:
            pass


atexit.register(_drain_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
