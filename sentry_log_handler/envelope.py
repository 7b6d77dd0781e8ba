"""Sentry envelopes: the bytes we put on the wire, and a strict parser for them.

The encoder is what the worker uses to frame events, logs and client reports. The parser is
for the local inbox and the tests: it is deliberately as strict as Relay (Sentry's ingestion
proxy), because Relay rejects a whole envelope with HTTP 400 for a framing mistake and a
lenient test server would let such a bug ship.

Format (develop.sentry.dev, "Envelopes"): one JSON header line, then for every item an
item-header JSON line, the payload, and a ``\\n``. We always write ``length`` so payloads may
contain newlines and the receiver never has to scan for the terminator.
"""

from __future__ import annotations

import gzip
import json
import re
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_SIZE",
    "JSON_ITEM_TYPES",
    "Envelope",
    "EnvelopeError",
    "EnvelopeTooLarge",
    "Item",
    "decompress",
    "encode_envelope",
    "gzip_bytes",
    "parse_envelope",
]

#: Relay's default ceiling for a decompressed envelope (``limits.max_envelope_size``).
DEFAULT_MAX_DECOMPRESSED_SIZE = 200 * 1024 * 1024

#: Item types whose payload Relay parses as JSON; a broken payload there fails the envelope.
JSON_ITEM_TYPES = frozenset({"event", "transaction", "client_report", "log"})

# RFC 3339 date-time as Relay's ``sent_at`` accepts it: an explicit offset is mandatory.
_RFC3339 = re.compile(
    r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z"
)


class EnvelopeError(ValueError):
    """The bytes are not an envelope Relay would accept (the server would answer 400)."""


class EnvelopeTooLarge(EnvelopeError):
    """Decompressed data exceeded the size cap (the server would answer 413).

    A separate class so a receiver can tell "you sent too much" from "you sent garbage".
    """


def _dumps(obj: Any) -> bytes:
    # Private on purpose: serialize.dumps is the shared one, but this module must stay usable
    # (and testable) on its own. Same contract: compact, UTF-8, no NaN/Infinity.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; Relay's serde_json does not, so neither do we.
    raise ValueError(f"{name} is not valid JSON")


def _loads(data: bytes) -> Any:
    """Parse JSON the way Relay does: UTF-8 only, no NaN/Infinity literals."""
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


@dataclass
class Item:
    """One envelope item: its type, raw payload bytes and any extra item headers.

    ``headers`` holds only the extras (``content_type``, ``item_count``, ...): ``type`` and
    ``length`` are always written by :func:`encode_envelope` from the other fields, so they
    can never disagree with the payload.
    """

    type: str
    payload: bytes
    headers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, type: str, obj: Any, **headers: Any) -> Item:
        """Build an item whose payload is ``obj`` as compact UTF-8 JSON.

        Raises ``ValueError``/``TypeError`` when ``obj`` is not JSON-safe: making it safe is
        the serializer's job, and failing loudly here catches a missed conversion.
        """
        return cls(type=type, payload=_dumps(obj), headers=dict(headers))

    def json(self) -> Any:
        """The payload parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return _loads(self.payload)


@dataclass
class Envelope:
    """A parsed envelope: header dict and items in wire order."""

    headers: dict[str, Any] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)

    def _payloads(self, item_type: str) -> list[Any]:
        return [item.json() for item in self.items if item.type == item_type]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Parsed payloads of the ``event`` items (Relay allows at most one)."""
        return self._payloads("event")

    @property
    def client_reports(self) -> list[dict[str, Any]]:
        """Parsed payloads of the ``client_report`` items."""
        return self._payloads("client_report")

    @property
    def logs(self) -> list[dict[str, Any]]:
        """Parsed payloads of the ``log`` items, each ``{"items": [record, ...]}``."""
        return self._payloads("log")

    @property
    def log_records(self) -> list[dict[str, Any]]:
        """The individual log records of all ``log`` items, flattened in order."""
        return [record for payload in self.logs for record in payload.get("items", [])]

    def item_types(self) -> list[str]:
        """Item types in wire order: the quickest way for a test to see what was sent."""
        return [item.type for item in self.items]

    def to_bytes(self) -> bytes:
        """Encode again (``length`` on every item), e.g. to forward what the inbox got."""
        return encode_envelope(self.headers, self.items)


def encode_envelope(headers: dict[str, Any], items: Sequence[Item]) -> bytes:
    """Frame ``items`` under ``headers`` as envelope bytes (uncompressed).

    ``length`` is the byte length of the payload, written on every item, so multibyte text
    and embedded newlines cannot break the framing.
    """
    parts = [_dumps(headers), b"\n"]
    for item in items:
        item_headers: dict[str, Any] = {"type": item.type}
        item_headers.update(
            (key, value) for key, value in item.headers.items() if key not in ("type", "length")
        )
        item_headers["length"] = len(item.payload)
        parts += [_dumps(item_headers), b"\n", item.payload, b"\n"]
    return b"".join(parts)


def _split_line(data: bytes, start: int) -> tuple[bytes, int]:
    """Return the bytes from ``start`` to the next ``\\n`` (or EOF) and the offset after it."""
    end = data.find(b"\n", start)
    if end < 0:
        return data[start:], len(data)
    return data[start:end], end + 1


def _check_envelope_headers(headers: dict[str, Any]) -> None:
    """Validate the header fields Relay deserialises into typed values."""
    event_id = headers.get("event_id")
    if event_id is not None:
        if not isinstance(event_id, str):
            raise EnvelopeError("envelope header: event_id must be a string")
        try:
            uuid.UUID(event_id)
        except ValueError:
            raise EnvelopeError(f"envelope header: event_id {event_id!r} is not a UUID") from None
    sent_at = headers.get("sent_at")
    if sent_at is not None and (not isinstance(sent_at, str) or not _RFC3339.match(sent_at)):
        raise EnvelopeError(
            f"envelope header: sent_at {sent_at!r} is not an RFC 3339 timestamp with offset"
        )
    for key in ("dsn",):
        if key in headers and not isinstance(headers[key], str):
            raise EnvelopeError(f"envelope header: {key} must be a string")
    if "sdk" in headers and not isinstance(headers["sdk"], dict):
        raise EnvelopeError("envelope header: sdk must be an object")


def _parse_item_header(line: bytes, index: int) -> dict[str, Any]:
    if not line.strip():
        raise EnvelopeError(f"item {index}: empty item header line")
    try:
        header = _loads(line)
    except ValueError as exc:
        raise EnvelopeError(f"item {index}: item header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise EnvelopeError(f"item {index}: item header must be a JSON object")
    item_type = header.get("type")
    if not isinstance(item_type, str) or not item_type:
        raise EnvelopeError(f"item {index}: item header has no string 'type'")
    return header


def _check_json_payload(item: Item, index: int) -> None:
    """Relay parses these payloads; anything it cannot parse rejects the envelope."""
    try:
        payload = item.json()
    except ValueError as exc:
        raise EnvelopeError(
            f"item {index} ({item.type}): payload is not valid JSON: {exc}"
        ) from None
    if not isinstance(payload, dict):
        raise EnvelopeError(f"item {index} ({item.type}): payload must be a JSON object")
    if item.type == "log":
        records = payload.get("items")
        if not isinstance(records, list):
            raise EnvelopeError(f'item {index} (log): payload must be {{"items": [...]}}')
        declared = item.headers.get("item_count")
        if isinstance(declared, bool) or not isinstance(declared, int):
            raise EnvelopeError(f"item {index} (log): item header needs an integer item_count")
        if declared != len(records):
            raise EnvelopeError(
                f"item {index} (log): item_count is {declared} but the payload has "
                f"{len(records)} records"
            )


def parse_envelope(data: bytes) -> Envelope:
    """Parse envelope bytes, rejecting everything Relay would reject as malformed.

    ``Item.headers`` of the result holds the item headers *without* ``type`` and ``length``
    (the same shape :class:`Item` is built with), so ``parse_envelope(encode_envelope(h, i))``
    gives back equal items.
    """
    if not data:
        raise EnvelopeError("empty envelope: the header line is missing")
    line, offset = _split_line(data, 0)
    try:
        headers = _loads(line)
    except ValueError as exc:
        raise EnvelopeError(f"envelope header is not valid JSON: {exc}") from None
    if not isinstance(headers, dict):
        raise EnvelopeError("envelope header must be a JSON object")
    _check_envelope_headers(headers)

    items: list[Item] = []
    seen: dict[str, int] = {}
    while offset < len(data):
        index = len(items)
        line, offset = _split_line(data, offset)
        item_headers = _parse_item_header(line, index)
        item_type: str = item_headers.pop("type")
        length = item_headers.pop("length", None)
        if length is None:
            payload, offset = _split_line(data, offset)
        else:
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise EnvelopeError(
                    f"item {index} ({item_type}): length must be a non-negative integer, "
                    f"got {length!r}"
                )
            end = offset + length
            if end > len(data):
                raise EnvelopeError(
                    f"item {index} ({item_type}): length {length} exceeds the "
                    f"{len(data) - offset} bytes left"
                )
            payload = data[offset:end]
            if end < len(data) and data[end : end + 1] != b"\n":
                raise EnvelopeError(
                    f"item {index} ({item_type}): payload of length {length} is not followed "
                    f"by a newline (found {data[end : end + 10]!r}); length is wrong or there "
                    "is trailing garbage"
                )
            offset = min(end + 1, len(data))
        item = Item(type=item_type, payload=payload, headers=item_headers)
        if item_type in JSON_ITEM_TYPES:
            _check_json_payload(item, index)
        seen[item_type] = seen.get(item_type, 0) + 1
        if item_type in ("event", "log") and seen[item_type] > 1:
            raise EnvelopeError(f"item {index}: more than one {item_type!r} item in one envelope")
        items.append(item)
    return Envelope(headers=headers, items=items)


def gzip_bytes(data: bytes) -> bytes:
    """Gzip for the wire at level 1.

    Envelopes are mostly repetitive JSON: level 1 gets most of the size win at a fraction of
    the CPU of level 9, and the worker thread's throughput is what matters. ``mtime=0`` keeps
    the output deterministic (same input, same bytes), which makes tests and spools simpler.
    """
    return gzip.compress(data, compresslevel=1, mtime=0)


def _inflate(data: bytes, wbits: int, limit: int, what: str) -> tuple[bytes, bytes]:
    """Decompress one zlib/gzip/raw-deflate stream; return (output, bytes after the stream).

    Asks zlib for at most ``limit + 1`` bytes so a bomb costs us ``limit`` bytes of memory,
    never the full expansion.
    """
    decoder = zlib.decompressobj(wbits)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise EnvelopeError(f"corrupt {what} data: {exc}") from None
    if len(out) > limit:
        raise EnvelopeTooLarge(f"{what} data decompresses to more than {limit} bytes")
    if not decoder.eof:
        raise EnvelopeError(f"corrupt {what} data: stream is truncated")
    return out, decoder.unused_data


def _gunzip(data: bytes, limit: int) -> bytes:
    # A gzip body may hold several members back to back (RFC 1952 section 2.2).
    chunks: list[bytes] = []
    total = 0
    rest = data
    while True:
        out, rest = _inflate(rest, 16 + zlib.MAX_WBITS, limit - total, "gzip")
        chunks.append(out)
        total += len(out)
        if not rest:
            return b"".join(chunks)


def _deflate(data: bytes, limit: int) -> bytes:
    # HTTP "deflate" means zlib-wrapped (RFC 9110), but some clients send raw deflate; accept
    # both like Relay does. Only zlib's own header check decides, never a size error.
    try:
        out, rest = _inflate(data, zlib.MAX_WBITS, limit, "deflate")
    except EnvelopeTooLarge:
        raise
    except EnvelopeError:
        out, rest = _inflate(data, -zlib.MAX_WBITS, limit, "deflate")
    if rest:
        raise EnvelopeError(f"corrupt deflate data: {len(rest)} bytes after the stream")
    return out


def decompress(
    data: bytes, encoding: Optional[str], max_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
) -> bytes:
    """Undo an HTTP ``Content-Encoding`` (gzip, deflate, identity; a list is undone in reverse).

    Raises :class:`EnvelopeTooLarge` when the result would exceed ``max_size`` bytes and
    :class:`EnvelopeError` for unknown encodings or corrupt data, so a receiver can map them
    to 413 and 400.
    """
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding in ("gzip", "x-gzip"):
            data = _gunzip(data, max_size)
        elif coding == "deflate":
            data = _deflate(data, max_size)
        elif coding != "identity":
            raise EnvelopeError(f"unsupported content encoding {coding!r}")
    if len(data) > max_size:
        raise EnvelopeTooLarge(f"body of {len(data)} bytes exceeds the limit of {max_size}")
    return data
