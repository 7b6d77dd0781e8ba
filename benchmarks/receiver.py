"""A minimal, fast Sentry-compatible receiver for the benchmarks (standard library only).

Why not :class:`sentry_log_handler.inbox.Inbox`: the inbox parses every envelope strictly and
keeps every request in memory, which is right for tests but makes the *receiver* the
bottleneck (and a growing heap) in a 20 000-event burst. The benchmark needs a receiver whose
cost is negligible and identical for every peer, so this one only:

* accepts ``POST /api/<project>/envelope/`` and ``/api/<project>/store/`` over HTTP/1.1
  keep-alive (Content-Length or chunked bodies), and answers ``200 {"id": ...}``;
* decompresses ``gzip``/``deflate`` (and ``br`` if the ``brotli`` module is importable) and
  counts envelope items by type, so ``event`` items are the delivered events;
* sums the ``discarded_events`` of ``client_report`` items per (reason, category), so drops
  that a client *counted and reported* are visible on the receiving side too;
* answers ``GET /count`` with those counters as JSON, ``POST /reset`` zeroes them, and
  ``GET /last`` returns the last request body as received (still compressed) with its
  ``Content-Encoding`` header, so the raw-POST baseline can replay a real envelope.

It runs as its own process (``python benchmarks/receiver.py``, which prints ``PORT <n>`` on
its first stdout line) so that its CPU time never competes for the measured process's GIL.
asyncio with a hand-written parser: a few tens of microseconds per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import zlib
from collections import Counter
from typing import Any, Optional

try:  # optional: sentry-sdk uses brotli when it is installed
    import brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

_MAX_HEADER = 64 * 1024


class Counters:
    """Everything the benchmark reads back; reset between measurements."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.items: Counter[str] = Counter()
        self.store_events = 0
        self.discarded: Counter[str] = Counter()  # "reason/category" -> quantity
        self.undecodable = 0
        self.last_body = b""
        self.last_encoding = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "events": self.items.get("event", 0) + self.store_events,
            "items": dict(self.items),
            "discarded": dict(self.discarded),
            "undecodable": self.undecodable,
        }


def _decode(body: bytes, encoding: str) -> Optional[bytes]:
    encoding = encoding.strip().lower()
    try:
        if encoding in ("", "identity"):
            return body
        if encoding in ("gzip", "x-gzip", "deflate"):
            return zlib.decompress(body, 47)  # 32 + 15: gzip or zlib header, auto-detected
        if encoding == "br" and brotli is not None:
            return bytes(brotli.decompress(body))
    except Exception:
        return None
    return None


def count_envelope(data: bytes, counters: Counters) -> Optional[str]:
    """Count the items of one envelope; return its ``event_id`` (for the answer) if any."""
    newline = data.find(b"\n")
    if newline < 0:
        newline = len(data)
    try:
        header = json.loads(data[:newline] or b"{}")
    except ValueError:
        counters.undecodable += 1
        return None
    pos = newline + 1
    size = len(data)
    while pos < size:
        end = data.find(b"\n", pos)
        if end < 0:
            end = size
        line = data[pos:end]
        pos = end + 1
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            counters.undecodable += 1
            return None
        length = item.get("length")
        if isinstance(length, int):
            payload = data[pos : pos + length]
            pos += length + 1
        else:
            end = data.find(b"\n", pos)
            if end < 0:
                end = size
            payload = data[pos:end]
            pos = end + 1
        kind = str(item.get("type"))
        counters.items[kind] += 1
        if kind == "client_report":
            _count_report(payload, counters)
    event_id = header.get("event_id") if isinstance(header, dict) else None
    return event_id if isinstance(event_id, str) else None


def _count_report(payload: bytes, counters: Counters) -> None:
    try:
        report = json.loads(payload)
        for entry in report.get("discarded_events") or ():
            key = f"{entry.get('reason')}/{entry.get('category')}"
            counters.discarded[key] += int(entry.get("quantity", 0))
    except Exception:
        counters.undecodable += 1


class _Protocol(asyncio.Protocol):
    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.buffer = bytearray()
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and self._one_request():
            pass

    def _one_request(self) -> bool:
        """Handle one complete request from the buffer; False when more bytes are needed."""
        buf = self.buffer
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buf) > _MAX_HEADER:
                self._answer(431, b'{"detail":"headers too large"}', close=True)
            return False
        head = bytes(buf[:head_end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._answer(400, b'{"detail":"bad request line"}', close=True)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _dechunk(buf, start)
            if parsed is None:
                return False
            body, consumed = parsed
        else:
            length = int(headers.get("content-length") or 0)
            if len(buf) < start + length:
                return False
            body, consumed = bytes(buf[start : start + length]), start + length
        del buf[:consumed]
        close = headers.get("connection", "").lower() == "close"
        self._dispatch(method, target, headers, body, close)
        return True

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes, close: bool
    ) -> None:
        path = target.split("?", 1)[0]
        counters = self.counters
        if method == "GET" and path == "/count":
            self._answer(200, json.dumps(counters.as_json()).encode(), close=close)
        elif method == "POST" and path == "/reset":
            counters.reset()
            self._answer(200, b"{}", close=close)
        elif method == "GET" and path == "/last":
            self._answer(
                200,
                counters.last_body,
                close=close,
                extra=f"X-Original-Encoding: {counters.last_encoding}\r\n",
                content_type="application/octet-stream",
            )
        elif method == "POST" and path.startswith("/api/"):
            counters.requests += 1
            counters.bytes += len(body)
            encoding = headers.get("content-encoding", "")
            counters.last_body = body
            counters.last_encoding = encoding
            data = _decode(body, encoding)
            event_id: Optional[str] = None
            if data is None:
                counters.undecodable += 1
            elif path.rstrip("/").endswith("/store"):
                counters.store_events += 1
            else:
                event_id = count_envelope(data, counters)
            answer = json.dumps({"id": event_id}).encode() if event_id else b"{}"
            self._answer(200, answer, close=close)
        else:
            self._answer(404, b'{"detail":"not found"}', close=close)

    def _answer(
        self,
        status: int,
        body: bytes,
        *,
        close: bool,
        extra: str = "",
        content_type: str = "application/json",
    ) -> None:
        assert self.transport is not None
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        if close:
            self.transport.close()
            self.transport = None


def _dechunk(buf: bytearray, pos: int) -> Optional[tuple[bytes, int]]:
    """Decode a chunked body starting at ``pos``; None until it is complete."""
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)  # no trailers expected: just the final CRLF
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None
        parts.append(bytes(buf[pos : pos + size]))
        pos += size + 2


async def _serve(host: str, port: int) -> None:
    counters = Counters()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(counters), host, port, backlog=512)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
