"""The shared pipeline: one client owns the options, the worker and the delivery state,
and every front door (``SentryHandler``, ``SentryProcessor``) feeds it captures.

Caller side: :meth:`Client.capture` samples and queues (no I/O, no locks held for long).
Worker side: :meth:`Client.prepare` builds the event, runs ``before_send``, serialises with
limits and scrubbing and frames the envelope; :class:`~sentry_log_handler.delivery.Delivery`
sends it, honouring rate limits, retrying what may succeed later, spooling or counting what
cannot be delivered.
"""

from __future__ import annotations

import atexit
import os
import random
import time
import weakref
from typing import Any, Optional

from . import reports
from .breadcrumbs import BreadcrumbBuffer
from .delivery import EVENT_CATEGORY, Delivery
from .diagnostics import ErrorReporter
from .envelope import Item, encode_envelope
from .event import SDK_INFO, Capture, EventDefaults, build_event
from .normalize import encode_event
from .options import Options
from .spool import Spool
from .transport import Transport
from .worker import Worker

__all__ = ["Client"]

_EVENT = EVENT_CATEGORY


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
        self.delivery: Optional[Delivery] = None
        if opts.dsn is not None:
            transport = Transport(
                opts.dsn,
                connect_timeout=opts.connect_timeout,
                read_timeout=opts.read_timeout,
                http_proxy=opts.http_proxy,
                https_proxy=opts.https_proxy,
                ca_certs=opts.ca_certs,
            )
            self.delivery = Delivery(transport, opts, self.drops, self.errors)
        self.worker: Worker[Capture] = Worker(
            self._process,
            max_items=opts.max_queue_size,
            max_bytes=opts.max_queue_bytes,
            on_drop=self._on_queue_overflow,
            on_idle=self.delivery.on_idle if self.delivery is not None else None,
            on_error=lambda exc: self.errors.report_exception("worker", exc),
        )
        self._closed = False
        self.last_event_id: Optional[str] = None
        if self.spool is not None and self.spool.pending_count():
            self.worker.start()  # re-send what an earlier process left behind
        _live_clients.add(self)

    @property
    def transport(self) -> Optional[Transport]:
        return self.delivery.transport if self.delivery is not None else None

    @property
    def spool(self) -> Optional[Spool]:
        return self.delivery.spool if self.delivery is not None else None

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
        delivery = self.delivery
        if delivery is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        delivery.flushing += 1
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
            delivery.flushing -= 1

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
        delivery = self.delivery
        if delivery is not None and delivery.spool is not None:
            delivery.stopping.set()  # no retries at shutdown: failures go to the spool
        ok = self.worker.close(timeout)
        if delivery is not None:
            delivery.stopping.set()
            if delivery.spool is not None and self.worker.pending:
                self.worker.drain(self._spool_capture)
            if self.worker.pending == 0:
                delivery.close()
        return ok and self.worker.pending == 0

    def _spool_capture(self, capture: Capture) -> None:
        envelope = self._prepare_counted(capture)
        if envelope is not None and self.delivery is not None:
            self.delivery.store(envelope)

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring and tests: delivered, queued, dropped by reason."""
        result: dict[str, Any] = {
            "delivered": 0, "rejected_by_server": 0, "spooled": 0, "resent_from_spool": 0,
            "in_spool": 0,
        }
        if self.delivery is not None:
            result.update(self.delivery.stats())
        result["queued"] = self.worker.pending
        result["dropped"] = self.drops.lifetime()
        result["suppressed_errors"] = self.errors.suppressed
        return result

    # -- worker side -------------------------------------------------------------------

    def _process(self, capture: Capture) -> bool:
        envelope = self._prepare_counted(capture)
        if envelope is None:
            return True
        return self.deliver(envelope)

    def deliver(self, envelope: bytes) -> bool:
        """Send one prepared envelope now, on this thread (see ``Delivery.deliver``)."""
        return self.delivery is not None and self.delivery.deliver(envelope)

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

    def _after_fork_in_child(self) -> None:
        if self.delivery is not None:
            self.delivery.after_fork()
        else:
            self.drops.after_fork()
        self._closed = False

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
