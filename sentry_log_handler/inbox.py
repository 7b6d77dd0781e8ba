"""A local Sentry-compatible receiver: dev inbox, demo target and test fixture.

Why our own server instead of only a real one: tests need to see exactly what went over the
wire (headers, compression, framing) and to make the server misbehave on demand (5xx, 429 with
rate-limit headers, slow answers, dropped or refused connections). It accepts the same
requests Relay accepts and parses envelopes just as strictly (see :mod:`.envelope`), so a
framing bug fails here the way it would fail against sentry.io.

Only the standard library is used, so ``python -m sentry_log_handler inbox`` works wherever the
package is installed.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, TextIO
from urllib.parse import parse_qs, urlsplit

from .envelope import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    Envelope,
    EnvelopeError,
    EnvelopeTooLarge,
    Item,
    decompress,
    parse_envelope,
)

__all__ = ["Fault", "Inbox", "RequestInfo", "format_event_line", "serve_forever_cli"]

DEFAULT_MAX_BODY_SIZE = 20 * 1024 * 1024  # compressed, as Relay's max_api_payload_size
_ROUTE = re.compile(r"\A/api/(?P<project>[^/]+)/(?P<endpoint>envelope|store)/?\Z")
_JOIN_TIMEOUT = 5.0


@dataclass
class Fault:
    """How to misbehave for one request.

    The fault decides the answer (``status``, extra ``headers``, ``body``) after the request
    has been read. Exception: when ``status`` is 2xx and the request itself is invalid (bad
    key, bad framing), the real 4xx is answered, so a "slow but fine" fault never hides a
    client bug. ``store`` says whether the envelope is kept as received (default: only for
    2xx that is sent), e.g. ``Fault(status=503, store=True)`` models "accepted, but the
    answer was lost". ``delay`` is slept before answering (cut short by stop()).
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False
    body: Optional[bytes] = None
    store: Optional[bool] = None

    def stores(self) -> bool:
        """Whether an envelope answered with this fault is kept.

        Default: only for a 2xx answer that is actually sent; a dropped connection (``close``)
        models a failed delivery, so the client's retry is not counted twice. Use
        ``Fault(close=True, store=True)`` for "received, but the answer was lost".
        """
        if self.store is not None:
            return self.store
        return not self.close and 200 <= self.status < 300


@dataclass
class RequestInfo:
    """What one request looked like and how it was answered (``status`` None: dropped)."""

    method: str
    path: str
    headers: dict[str, str]
    status: Optional[int]
    body_size: int
    time: float
    body: bytes = b""
    envelope: Optional[Envelope] = None
    connection: int = 0  # serial number of the TCP connection it arrived on


Responder = Callable[[int], Optional[Fault]]
EventCallback = Callable[[dict[str, Any]], None]


class _Answer(Exception):
    """Raised inside request handling to answer early with a status and a detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its live connections, so stop() can end them.

    The stock server joins handler threads on close but cannot wake one that is blocked
    reading the next request of an idle keep-alive connection; we shut those sockets down.
    """

    daemon_threads = True
    block_on_close = False  # we join our own threads, with a timeout
    inbox: Inbox

    def __init__(self, address: tuple[str, int], inbox: Inbox, family: int) -> None:
        self.address_family = family
        self.inbox = inbox
        self.connections: dict[socket.socket, tuple[threading.Thread, int]] = {}
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall for
        # seconds without DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Register before the thread starts: after shutdown() returns, every live
        # connection is in the table and stop() can reach it.
        serial = self.inbox._count_connection()
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"sentry-inbox-conn-{serial}",
            daemon=True,
        )
        with self.conn_lock:
            self.connections[request] = (thread, serial)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (and our own shutdown of their sockets) are normal here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> list[threading.Thread]:
        """Shut down every live connection; return their threads for joining."""
        with self.conn_lock:
            live = list(self.connections.items())
        for sock, _ in live:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        return [thread for _, (thread, _) in live]


class _Handler(BaseHTTPRequestHandler):
    """Per-connection request handler; all state lives on the Inbox."""

    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like Relay; every answer has Content-Length
    timeout = 120  # idle keep-alive connections of a long-running dev inbox do not pile up
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per request on Linux loopback).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines: the inbox is used inside test output."""

    def do_POST(self) -> None:
        self.server.inbox._handle(self)

    def do_GET(self) -> None:
        self.server.inbox._handle(self)

    def connection_serial(self) -> int:
        with self.server.conn_lock:
            entry = self.server.connections.get(self.request)
        return entry[1] if entry else 0


def _read_chunked(rfile: Any, limit: int) -> bytes:
    """Read a ``Transfer-Encoding: chunked`` body, refusing more than ``limit`` bytes."""
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise _Answer(400, "malformed chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Answer(400, "malformed chunk size") from None
        if size == 0:
            break
        if len(body) + size > limit:
            raise _Answer(413, f"request body exceeds {limit} bytes")
        chunk = rfile.read(size)
        if len(chunk) != size or rfile.read(2) != b"\r\n":
            raise _Answer(400, "truncated chunked body")
        body += chunk
    while True:  # trailers, up to the blank line
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n", b""):
            return bytes(body)


def _sentry_key(handler: BaseHTTPRequestHandler, query: str) -> Optional[str]:
    """The public key from X-Sentry-Auth, ``Authorization: Sentry ...`` or the query string."""
    for name in ("X-Sentry-Auth", "Authorization"):
        value = handler.headers.get(name)
        if not value:
            continue
        value = value.strip()
        if value[:7].lower() == "sentry ":
            value = value[7:]
        elif name == "Authorization":
            continue
        for part in value.split(","):
            key, _, val = part.strip().partition("=")
            if key.strip() == "sentry_key":
                return val.strip()
    keys = parse_qs(query).get("sentry_key")
    return keys[0] if keys else None


class Inbox:
    """A threaded HTTP/1.1 server speaking the Sentry ingestion API.

    Everything received is kept in memory (``envelopes``, ``events``, ``client_reports``,
    ``logs``, ``requests``); the ``wait_for*`` methods block on a condition so tests never
    sleep. Faults are applied in this order: queued one-shot faults (:meth:`inject`), then the
    responder (:meth:`set_responder`), then the persistent fault (:meth:`set_fault`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        public_key: Optional[str] = None,
        project_id: str = "1",
        *,
        on_event: Optional[EventCallback] = None,
        on_log: Optional[EventCallback] = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
    ) -> None:
        self.host = host
        self._port = port
        self._public_key = public_key or secrets.token_hex(16)
        self.project_id = str(project_id)
        self.on_event = on_event
        self.on_log = on_log
        self.max_body_size = max_body_size
        self.max_decompressed_size = max_decompressed_size

        self._cond = threading.Condition(threading.RLock())
        self._envelopes: list[Envelope] = []
        self._events: list[dict[str, Any]] = []
        self._client_reports: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._requests: list[RequestInfo] = []
        self._next_request_index = 0
        self._connections_accepted = 0

        self._one_shot: deque[Fault] = deque()
        self._fault: Optional[Fault] = None
        self._responder: Optional[Responder] = None

        self._life = threading.Lock()  # serialises start/stop/refuse/accept
        self._server: Optional[_Server] = None
        self._serve_thread: Optional[threading.Thread] = None
        self._started = False
        self._stopping = threading.Event()  # wakes handlers sleeping in a fault delay

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Inbox:
        """Bind and start serving in a background thread; returns self for chaining."""
        with self._life:
            if self._started:
                raise RuntimeError("inbox already started")
            self._bind(self._port)
            self._started = True
        return self

    def stop(self) -> None:
        """Stop serving, end keep-alive connections and join every thread. Idempotent."""
        with self._life:
            self._unbind()
            self._started = False

    def refuse(self) -> None:
        """Close the listening socket (and live connections): connects get ECONNREFUSED.

        Models a server that is down. The port stays reserved for :meth:`accept` only as far
        as nobody else binds it meanwhile, which is practically never on 127.0.0.1.
        """
        with self._life:
            if not self._started:
                raise RuntimeError("inbox is not started")
            self._unbind()

    def accept(self) -> None:
        """Listen again on the same port after :meth:`refuse`."""
        with self._life:
            if not self._started:
                raise RuntimeError("inbox is not started")
            if self._server is not None:
                return
            last: Optional[OSError] = None
            for _ in range(50):  # the port can be briefly held by a closing socket
                try:
                    self._bind(self._port)
                    return
                except OSError as exc:
                    last = exc
                    time.sleep(0.05)
            raise OSError(f"cannot listen on port {self._port} again: {last}")

    @property
    def refusing(self) -> bool:
        """True between :meth:`refuse` and :meth:`accept`."""
        return self._started and self._server is None

    def __enter__(self) -> Inbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self, port: int) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server = _Server((self.host, port), self, family)  # SO_REUSEADDR is set by HTTPServer
        self._stopping.clear()
        self._port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sentry-inbox-{self._port}",
            daemon=True,
        )
        thread.start()
        self._server, self._serve_thread = server, thread

    def _unbind(self) -> None:
        server, thread = self._server, self._serve_thread
        self._server = self._serve_thread = None
        if server is None or thread is None:
            return
        self._stopping.set()  # wake handlers sleeping in a fault delay
        server.shutdown()  # returns once serve_forever has left its loop
        thread.join()
        server.server_close()
        for conn_thread in server.close_connections():
            conn_thread.join(_JOIN_TIMEOUT)

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def public_key(self) -> str:
        return self._public_key

    @property
    def _dsn_host(self) -> str:
        if self.host in ("", "0.0.0.0"):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:5000``."""
        return f"http://{self._dsn_host}:{self._port}"

    @property
    def dsn(self) -> str:
        return f"http://{self._public_key}@{self._dsn_host}:{self._port}/{self.project_id}"

    @property
    def envelope_url(self) -> str:
        return f"{self.url}/api/{self.project_id}/envelope/"

    # -- stored data (snapshots, safe to iterate while requests arrive) -----------------

    @property
    def envelopes(self) -> list[Envelope]:
        with self._cond:
            return list(self._envelopes)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._events)

    @property
    def client_reports(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._client_reports)

    @property
    def logs(self) -> list[dict[str, Any]]:
        """Individual log records from all ``log`` items, in arrival order."""
        with self._cond:
            return list(self._logs)

    @property
    def requests(self) -> list[RequestInfo]:
        with self._cond:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._cond:
            return len(self._requests)

    @property
    def connection_count(self) -> int:
        """TCP connections accepted so far: shows whether a client reused its connection."""
        with self._cond:
            return self._connections_accepted

    def clear(self) -> None:
        """Forget everything received (faults stay configured; request indexes restart)."""
        with self._cond:
            self._envelopes.clear()
            self._events.clear()
            self._client_reports.clear()
            self._logs.clear()
            self._requests.clear()
            self._next_request_index = 0
            self._connections_accepted = 0

    # -- waiting -----------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every request); return it.

        Raises ``TimeoutError`` after ``timeout`` seconds, naming what did arrive.
        """
        with self._cond:
            result = self._cond.wait_for(predicate, timeout)
            if not result:
                raise TimeoutError(
                    f"condition not met within {timeout}s; received so far: {self._summary()}"
                )
            return result

    def wait_for_events(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` events arrived; return all events received."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._events) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} event(s) within {timeout}s, got {len(self._events)}; "
                    f"received so far: {self._summary()}"
                )
            return list(self._events)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[RequestInfo]:
        """Block until at least ``n`` requests were answered (or dropped); return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._requests) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} request(s) within {timeout}s, got {len(self._requests)}; "
                    f"received so far: {self._summary()}"
                )
            return list(self._requests)

    def wait_for_logs(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` log records arrived; return them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._logs) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} log record(s) within {timeout}s, got {len(self._logs)}; "
                    f"received so far: {self._summary()}"
                )
            return list(self._logs)

    def _summary(self) -> str:
        statuses = [r.status for r in self._requests]
        return (
            f"{len(self._requests)} request(s) answered {statuses}, "
            f"{len(self._envelopes)} envelope(s), {len(self._events)} event(s), "
            f"{len(self._logs)} log record(s), {len(self._client_reports)} client report(s)"
        )

    # -- fault injection ---------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue one-shot faults, applied to the next requests in order."""
        with self._cond:
            self._one_shot.extend(faults)

    def set_fault(self, fault: Optional[Fault]) -> None:
        """Apply ``fault`` to every request until reset with ``None``."""
        with self._cond:
            self._fault = fault

    def set_responder(self, responder: Optional[Responder]) -> None:
        """Decide per request: ``responder(request_index) -> Fault | None`` (None: normal).

        ``request_index`` counts requests from 0 (since start or :meth:`clear`).
        """
        with self._cond:
            self._responder = responder

    def fail(
        self,
        status: int,
        times: int = 1,
        headers: Optional[dict[str, str]] = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``headers``)."""
        self.inject(
            *(Fault(status=status, headers=dict(headers or {}), delay=delay) for _ in range(times))
        )

    def reset_faults(self) -> None:
        """Drop queued, persistent and responder faults."""
        with self._cond:
            self._one_shot.clear()
            self._fault = None
            self._responder = None

    def _count_connection(self) -> int:
        with self._cond:
            self._connections_accepted += 1
            return self._connections_accepted

    def _next_fault(self) -> tuple[int, Optional[Fault]]:
        with self._cond:
            index = self._next_request_index
            self._next_request_index += 1
            if self._one_shot:
                return index, self._one_shot.popleft()
            responder, fault = self._responder, self._fault
        if responder is not None:
            chosen = responder(index)
            if chosen is not None:
                return index, chosen
        return index, fault

    # -- request handling --------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        """Read, check, store and answer one request."""
        split = urlsplit(handler.path)
        headers = dict(handler.headers.items())
        received = time.time()
        body = b""
        envelope: Optional[Envelope] = None
        try:
            body = self._read_body(handler)
        except _Answer as early:
            # The body was not (fully) read: the connection is out of sync, close it.
            handler.close_connection = True
            self._record(handler, split.path, headers, early.status, body, None, received)
            self._respond(handler, early.status, {}, _detail(early.detail))
            return

        # Faults are meant for deliveries: a stray GET must not use one up.
        fault = self._next_fault()[1] if handler.command == "POST" else None
        try:
            envelope = self._process(handler, split.path, split.query, body)
            status, payload = 200, _ok_body(envelope)
        except _Answer as answer:
            status, payload = answer.status, _detail(answer.detail)
        except Exception as exc:  # a bug in the inbox: say so, keep serving
            traceback.print_exc()
            status, payload = 500, _detail(f"inbox internal error: {exc!r}")

        store = 200 <= status < 300
        extra_headers = dict(fault.headers) if fault is not None else {}
        # A 2xx fault never masks a real rejection (see Fault); any other fault decides.
        if fault is not None and (store or not 200 <= fault.status < 300):
            store = envelope is not None and fault.stores()
            if fault.body is not None:
                payload = fault.body
            elif fault.status != status:
                payload = _fault_body(fault.status, envelope)
            status = fault.status
        if store and envelope is not None:
            self._store(envelope)
        if fault is not None and fault.delay > 0:
            self._stopping.wait(fault.delay)
        if fault is not None and fault.close:
            handler.close_connection = True
            self._record(handler, split.path, headers, None, body, envelope, received)
            return  # the server shuts the socket down without an answer
        self._record(handler, split.path, headers, status, body, envelope, received)
        self._respond(handler, status, extra_headers, payload)

    def _read_body(self, handler: _Handler) -> bytes:
        if handler.command != "POST":
            return b""
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(handler.rfile, self.max_body_size)
        length_text = handler.headers.get("Content-Length")
        if length_text is None:
            raise _Answer(411, "Content-Length required")
        try:
            length = int(length_text)
        except ValueError:
            raise _Answer(400, f"bad Content-Length {length_text!r}") from None
        if length < 0:
            raise _Answer(400, f"bad Content-Length {length_text!r}")
        if length > self.max_body_size:
            raise _Answer(413, f"request body of {length} bytes exceeds {self.max_body_size}")
        body: bytes = handler.rfile.read(length)
        if len(body) != length:
            raise _Answer(400, f"body ended after {len(body)} of {length} bytes")
        return body

    def _process(self, handler: _Handler, path: str, query: str, body: bytes) -> Envelope:
        match = _ROUTE.match(path)
        if match is None or handler.command != "POST":
            if match is not None:
                raise _Answer(405, f"method {handler.command} not allowed")
            raise _Answer(404, f"no such endpoint: {path}")
        if _sentry_key(handler, query) != self._public_key:
            raise _Answer(401, "invalid api key")
        if match.group("project") != self.project_id:
            # Relay rejects a key used with another project's URL as forbidden.
            raise _Answer(403, f"project {match.group('project')} does not match the key")
        try:
            data = decompress(
                body, handler.headers.get("Content-Encoding"), self.max_decompressed_size
            )
        except EnvelopeTooLarge as exc:
            raise _Answer(413, str(exc)) from None
        except EnvelopeError as exc:
            raise _Answer(400, str(exc)) from None
        if match.group("endpoint") == "store":
            return _store_request_envelope(data)
        try:
            return parse_envelope(data)
        except EnvelopeError as exc:
            raise _Answer(400, f"invalid envelope: {exc}") from None

    def _store(self, envelope: Envelope) -> None:
        events, logs = envelope.events, envelope.log_records
        with self._cond:
            self._envelopes.append(envelope)
            self._events.extend(events)
            self._client_reports.extend(envelope.client_reports)
            self._logs.extend(logs)
            self._cond.notify_all()
        for callback, records in ((self.on_event, events), (self.on_log, logs)):
            if callback is None:
                continue
            for record in records:
                try:
                    callback(record)
                except Exception:  # a broken printer must not break the server
                    traceback.print_exc()

    def _record(
        self,
        handler: _Handler,
        path: str,
        headers: dict[str, str],
        status: Optional[int],
        body: bytes,
        envelope: Optional[Envelope],
        received: float,
    ) -> None:
        info = RequestInfo(
            method=handler.command,
            path=path,
            headers=headers,
            status=status,
            body_size=len(body),
            time=received,
            body=body,
            envelope=envelope,
            connection=handler.connection_serial(),
        )
        with self._cond:
            self._requests.append(info)
            self._cond.notify_all()

    def _respond(
        self, handler: _Handler, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()


def _detail(text: str) -> bytes:
    return json.dumps({"detail": text}).encode()


def _ok_body(envelope: Envelope) -> bytes:
    """Sentry answers ``{"id": event_id}``, or ``{}`` when there is no event id."""
    event_id = envelope.headers.get("event_id")
    if event_id is None:
        for event in envelope.events:
            event_id = event.get("event_id")
            break
    return json.dumps({"id": event_id} if isinstance(event_id, str) else {}).encode()


def _fault_body(status: int, envelope: Optional[Envelope]) -> bytes:
    if 200 <= status < 300 and envelope is not None:
        return _ok_body(envelope)
    return _detail(f"injected fault: HTTP {status}")


def _store_request_envelope(data: bytes) -> Envelope:
    """Wrap a legacy ``/store/`` body (one event JSON) as an envelope with one event item."""
    try:
        event = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise _Answer(400, f"invalid event JSON: {exc}") from None
    if not isinstance(event, dict):
        raise _Answer(400, "event must be a JSON object")
    headers = {"event_id": event["event_id"]} if isinstance(event.get("event_id"), str) else {}
    return Envelope(headers=headers, items=[Item(type="event", payload=data)])


# -- CLI --------------------------------------------------------------------------------


def _event_time(event: dict[str, Any]) -> str:
    stamp = event.get("timestamp")
    seconds: Optional[float] = None
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        seconds = float(stamp)
    elif isinstance(stamp, str):
        try:
            seconds = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            seconds = None
    return time.strftime("%H:%M:%S", time.localtime(seconds))


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\\n")


def format_event_line(event: dict[str, Any]) -> str:
    """One readable line: ``HH:MM:SS LEVEL logger: message [k=v, ...]``.

    The message is ``logentry.formatted``, else ``logentry.message``, else ``message``; the
    newest exception is shown as ``Type: value`` (after the message, or instead of it).
    """
    raw_logentry = event.get("logentry")
    logentry = raw_logentry if isinstance(raw_logentry, dict) else {}
    message = logentry.get("formatted") or logentry.get("message") or event.get("message") or ""
    exc_text = ""
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else exception
    if isinstance(values, list) and values and isinstance(values[-1], dict):
        last = values[-1]
        exc_text = f"{last.get('type', 'Exception')}: {last.get('value', '')}".rstrip(": ")
    if message and exc_text:
        text = f"{message} ({exc_text})"
    else:
        text = str(message or exc_text or "<no message>")
    tags = event.get("tags") or {}
    pairs = tags.items() if isinstance(tags, dict) else [tuple(t) for t in tags if len(t) == 2]
    tag_text = ", ".join(f"{k}={v}" for k, v in pairs)
    level = str(event.get("level") or "error").upper()
    logger = event.get("logger") or "-"
    line = f"{_event_time(event)} {level} {logger}: {_one_line(str(text))}"
    return f"{line} [{tag_text}]" if tag_text else line


def _format_log_line(record: dict[str, Any]) -> str:
    raw_attributes = record.get("attributes")
    attributes = raw_attributes if isinstance(raw_attributes, dict) else {}
    logger = attributes.get("logger.name", {})
    name = logger.get("value") if isinstance(logger, dict) else None
    level = str(record.get("level") or "info").upper()
    body = _one_line(str(record.get("body", "")))
    return f"{_event_time(record)} {level} {name or '-'}: {body} (log)"


def serve_forever_cli(
    port: int = 0,
    out: TextIO = sys.stdout,
    *,
    host: str = "127.0.0.1",
    public_key: Optional[str] = None,
    stop: Optional[threading.Event] = None,
) -> int:
    """Run a dev inbox: print its DSN, then one line per event, until Ctrl-C (or ``stop``).

    A fixed ``public_key`` keeps the DSN stable across restarts, so it can live in an env file.
    Returns the process exit code (0).
    """
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            out.write(line + "\n")
            out.flush()

    inbox = Inbox(
        host=host,
        port=port,
        public_key=public_key,
        on_event=lambda event: emit(format_event_line(event)),
        on_log=lambda record: emit(_format_log_line(record)),
    )
    inbox.start()
    try:
        emit(f"Sentry inbox listening on {inbox.url}")
        emit(f"SENTRY_DSN={inbox.dsn}")
        waiter = stop or threading.Event()
        while not waiter.wait(0.5):  # short waits keep Ctrl-C responsive everywhere
            pass
    except KeyboardInterrupt:
        pass
    finally:
        inbox.stop()
    emit("Sentry inbox stopped")
    return 0
