"""Envelope framing: what we encode is what Relay parses, and the parser is as strict as Relay."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentry_log_handler.envelope import (
    Envelope,
    EnvelopeError,
    EnvelopeTooLarge,
    Item,
    decompress,
    encode_envelope,
    gzip_bytes,
    parse_envelope,
)

EVENT_ID = "9ec79c33ec9942ab8353589fcb2e04dc"


def _log_item(n: int, **headers: object) -> Item:
    records = [{"timestamp": 1.5, "level": "info", "body": f"r{i}"} for i in range(n)]
    headers.setdefault("item_count", n)
    return Item.from_json("log", {"items": records}, **headers)


# -- encoding ---------------------------------------------------------------------------------


def test_encode_layout_and_lengths() -> None:
    event = {"event_id": EVENT_ID, "message": "hi"}
    data = encode_envelope({"event_id": EVENT_ID}, [Item.from_json("event", event)])
    header, item_header, payload, rest = data.split(b"\n")
    assert json.loads(header) == {"event_id": EVENT_ID}
    assert json.loads(item_header) == {"type": "event", "length": len(payload)}
    assert json.loads(payload) == event
    assert rest == b""  # every item ends with exactly one newline


def test_from_json_is_compact_utf8() -> None:
    item = Item.from_json("event", {"a": "é☃", "b": [1, 2]})
    assert item.payload == '{"a":"é☃","b":[1,2]}'.encode()


def test_from_json_rejects_nan() -> None:
    with pytest.raises(ValueError):
        Item.from_json("event", {"x": float("nan")})


def test_length_counts_bytes_for_multibyte_and_newlines() -> None:
    text = "zürich ☃ 🎉\nsecond line\n"
    event = {"event_id": EVENT_ID, "message": text}
    item = Item(type="attachment", payload=text.encode())
    data = encode_envelope({}, [Item.from_json("event", event), item])
    envelope = parse_envelope(data)
    assert envelope.items[1].payload == text.encode()
    assert envelope.events == [event]
    lines = data.split(b"\n")
    event_header = json.loads(lines[1])
    assert event_header["length"] == len(
        json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert event_header["length"] > len(
        json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    )


def test_encoder_owns_type_and_length() -> None:
    item = Item(type="event", payload=b"{}", headers={"type": "bogus", "length": 99, "x": 1})
    data = encode_envelope({}, [item])
    assert json.loads(data.split(b"\n")[1]) == {"type": "event", "x": 1, "length": 2}


@given(
    payloads=st.lists(st.binary(max_size=200), max_size=5),
    meta=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
)
def test_round_trip_any_bytes(payloads: list[bytes], meta: dict[str, str]) -> None:
    items = [Item(type="attachment", payload=p, headers={"filename": "f"}) for p in payloads]
    envelope = parse_envelope(encode_envelope(meta, items))
    assert envelope.headers == meta
    assert envelope.items == items


def test_round_trip_mixed_items() -> None:
    report = {
        "timestamp": 1.0,
        "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 2}],
    }
    items = [
        Item.from_json("event", {"event_id": EVENT_ID}),
        _log_item(3, content_type="application/vnd.sentry.items.log+json"),
        Item.from_json("client_report", report),
    ]
    envelope = parse_envelope(
        encode_envelope({"event_id": EVENT_ID, "sent_at": "2024-01-02T03:04:05.123Z"}, items)
    )
    assert envelope.item_types() == ["event", "log", "client_report"]
    assert envelope.items == items
    assert envelope.client_reports == [report]
    assert len(envelope.logs) == 1 and len(envelope.logs[0]["items"]) == 3
    assert [r["body"] for r in envelope.log_records] == ["r0", "r1", "r2"]
    assert parse_envelope(envelope.to_bytes()) == envelope


# -- lenient where Relay is lenient -----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"{}",  # header only, no newline
        b"{}\n",
        b'{}\n{"type":"attachment","length":3}\nabc',  # last payload at EOF, no newline
        b'{}\n{"type":"event"}\n{"a":1}\n',  # no length: payload runs to the newline
        b'{}\n{"type":"event"}\n{"a":1}',
        b'{"event_id":"9ec79c33-ec99-42ab-8353-589fcb2e04dc","sent_at":"2024-01-02T03:04:05+00:00"}\n',
    ],
)
def test_accepts_valid_framings(data: bytes) -> None:
    assert isinstance(parse_envelope(data), Envelope)


# -- strict rejections ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "header line is missing"),
        (b"{bad\n", "envelope header is not valid JSON"),
        (b"[]\n", "envelope header must be a JSON object"),
        (b'{"event_id":"nope"}\n', "event_id 'nope' is not a UUID"),
        (b'{"event_id":5}\n', "event_id must be a string"),
        (b'{"sent_at":"2024-01-02 03:04:05"}\n', "sent_at"),
        (b'{"sent_at":1700000000}\n', "sent_at"),
        (b'{"x":NaN}\n', "not valid JSON"),
        (b"{}\n\n", "item 0: empty item header line"),
        (b'{}\n{"length":2}\n{}\n', "item 0: item header has no string 'type'"),
        (b'{}\n{"type":7,"length":2}\n{}\n', "item 0: item header has no string 'type'"),
        (b'{}\n["event"]\n{}\n', "item 0: item header must be a JSON object"),
        (b'{}\n{"type":"event",\n{}\n', "item 0: item header is not valid JSON"),
        (b'{}\n{"type":"event","length":"2"}\n{}\n', "item 0 (event): length must be"),
        (b'{}\n{"type":"event","length":-1}\n{}\n', "length must be a non-negative"),
        (b'{}\n{"type":"event","length":true}\n{}\n', "length must be"),
        (b'{}\n{"type":"attachment","length":10}\nabc\n', "length 10 exceeds the 4 bytes left"),
        (b'{}\n{"type":"attachment","length":2}\nabc\n', "not followed by a newline"),
        (
            b'{}\n{"type":"attachment","length":3}\nabc\ngarbage',
            "item 1: item header is not valid JSON",
        ),
        (b'{}\n{"type":"attachment","length":3}\nabc\n\n', "item 1: empty item header line"),
        (b'{}\n{"type":"event","length":3}\n{x}\n', "item 0 (event): payload is not valid JSON"),
        (b'{}\n{"type":"event","length":2}\n[]\n', "item 0 (event): payload must be a JSON object"),
        (
            b'{}\n{"type":"transaction","length":1}\n{\n',
            "item 0 (transaction): payload is not valid",
        ),
        (b'{}\n{"type":"client_report","length":3}\nnul\n', "item 0 (client_report)"),
        (b'{}\n{"type":"event","length":9}\n{"a":NaN}\n', "NaN is not valid JSON"),
        (b'{}\n{"type":"event","length":3}\n\xff{}\n', "payload is not valid JSON"),
        (b'{}\n{"type":"log","item_count":0,"length":2}\n{}\n', 'payload must be {"items": [...]}'),
        (b'{}\n{"type":"log","length":12}\n{"items":[]}\n', "needs an integer item_count"),
    ],
)
def test_rejects_malformed(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(data)
    assert message in str(info.value)


def test_rejects_two_event_items() -> None:
    event = Item.from_json("event", {"event_id": EVENT_ID})
    with pytest.raises(EnvelopeError, match=r"item 1: more than one 'event' item"):
        parse_envelope(encode_envelope({}, [event, event]))


def test_rejects_two_log_items() -> None:
    data = encode_envelope({}, [_log_item(1), Item.from_json("event", {}), _log_item(1)])
    with pytest.raises(EnvelopeError, match=r"item 2: more than one 'log' item"):
        parse_envelope(data)


@pytest.mark.parametrize("declared", [0, 2, 4])
def test_rejects_log_item_count_mismatch(declared: int) -> None:
    data = encode_envelope({}, [_log_item(3, item_count=declared)])
    with pytest.raises(
        EnvelopeError, match=rf"item 0 \(log\): item_count is {declared} but the payload has 3"
    ):
        parse_envelope(data)


def test_many_attachments_are_fine() -> None:
    # Only event and log are limited to one per envelope.
    items = [Item(type="attachment", payload=b"x")] * 3 + [Item.from_json("client_report", {})] * 2
    assert parse_envelope(encode_envelope({}, items)).item_types().count("attachment") == 3


# -- compression ------------------------------------------------------------------------------

BODY = encode_envelope({"event_id": EVENT_ID}, [Item.from_json("event", {"message": "x" * 5000})])


def test_gzip_round_trip_and_is_deterministic() -> None:
    packed = gzip_bytes(BODY)
    assert packed[:2] == b"\x1f\x8b"
    assert len(packed) < len(BODY) / 10
    assert gzip.decompress(packed) == BODY
    assert decompress(packed, "gzip") == BODY
    assert gzip_bytes(BODY) == packed


def _raw_deflate(data: bytes) -> bytes:
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return raw.compress(data) + raw.flush()


@pytest.mark.parametrize(
    "packed",
    [pytest.param(zlib.compress(BODY), id="zlib"), pytest.param(_raw_deflate(BODY), id="raw")],
)
def test_deflate_zlib_and_raw(packed: bytes) -> None:
    assert decompress(packed, "deflate") == BODY


def test_identity_and_none() -> None:
    assert decompress(BODY, None) == BODY
    assert decompress(BODY, "") == BODY
    assert decompress(BODY, "identity") == BODY


def test_multi_member_gzip_and_stacked_encodings() -> None:
    assert decompress(gzip_bytes(b"ab") + gzip_bytes(b"cd"), "gzip") == b"abcd"
    assert decompress(gzip_bytes(zlib.compress(BODY)), "deflate, GZIP") == BODY


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        (BODY, "br", "unsupported content encoding 'br'"),
        (b"not gzip at all", "gzip", "corrupt gzip data"),
        (gzip_bytes(BODY)[:-20], "gzip", "truncated"),
        (gzip_bytes(BODY) + b"junk", "gzip", "corrupt gzip data"),
        (b"\x00\x01garbage", "deflate", "corrupt deflate data"),
        (zlib.compress(BODY) + b"junk", "deflate", "after the stream"),
        (b"", "gzip", "truncated"),
    ],
)
def test_decompress_rejects(data: bytes, encoding: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decompress(data, encoding)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_decompression_bomb_is_capped(encoding: str) -> None:
    bomb_size = 64 * 1024 * 1024
    plain = bytes(bomb_size)
    packed = gzip_bytes(plain) if encoding == "gzip" else zlib.compress(plain, 9)
    assert len(packed) < 300_000
    with pytest.raises(EnvelopeTooLarge, match="more than 1048576 bytes"):
        decompress(packed, encoding, max_size=1024 * 1024)
    assert decompress(packed, encoding, max_size=bomb_size) == plain  # exactly at the cap is fine


def test_identity_over_cap_is_too_large() -> None:
    with pytest.raises(EnvelopeTooLarge):
        decompress(b"x" * 11, "identity", max_size=10)


def test_too_large_is_an_envelope_error() -> None:
    # Receivers that only know EnvelopeError still reject bombs.
    assert issubclass(EnvelopeTooLarge, EnvelopeError)
    assert issubclass(EnvelopeError, ValueError)
