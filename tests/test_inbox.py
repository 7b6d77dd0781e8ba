"""The local inbox: Sentry's ingestion API, strict parsing, fault injection, clean shutdown.

Real sockets and ``requests`` only: the inbox is the server the rest of the suite trusts.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid
import zlib
from typing import Any, Optional

import pytest
import requests
from relay_check import assert_relay_clean, relay_problems

from sentry_log_handler.envelope import Item, encode_envelope, gzip_bytes
from sentry_log_handler.inbox import Fault, Inbox, format_event_line, serve_forever_cli

# -- helpers ----------------------------------------------------------------------------------


def make_event(message: str = "boom", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": 1700000000.25,
        "platform": "python",
        "level": "error",
        "logger": "app.db",
        "logentry": {"message": message, "formatted": message},
    }
    event.update(fields)
    return event


def envelope_for(event: dict[str, Any]) -> bytes:
    return encode_envelope({"event_id": event["event_id"]}, [Item.from_json("event", event)])


def auth(inbox: Inbox, key: Optional[str] = None) -> dict[str, str]:
    return {
        "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_client=tests/1, "
        f"sentry_key={key or inbox.public_key}",
        "Content-Type": "application/x-sentry-envelope",
    }


def post(
    inbox: Inbox,
    body: bytes,
    session: Optional[requests.Session] = None,
    headers: Optional[dict[str, str]] = None,
    **kwargs: Any,
) -> requests.Response:
    sender: Any = session or requests
    kwargs.setdefault("timeout", 10)
    response: requests.Response = sender.post(
        inbox.envelope_url, data=body, headers={**auth(inbox), **(headers or {})}, **kwargs
    )
    return response


# -- addresses and success --------------------------------------------------------------------


def test_addresses(inbox: Inbox) -> None:
    assert inbox.port > 0
    assert len(inbox.public_key) == 32 and int(inbox.public_key, 16) >= 0
    assert inbox.dsn == f"http://{inbox.public_key}@127.0.0.1:{inbox.port}/1"
    assert inbox.envelope_url == f"http://127.0.0.1:{inbox.port}/api/1/envelope/"


def test_accepts_event_and_answers_its_id(inbox: Inbox) -> None:
    event = make_event()
    response = post(inbox, envelope_for(event))
    assert response.status_code == 200
    assert response.json() == {"id": event["event_id"]}
    assert response.headers["Content-Type"] == "application/json"
    assert inbox.wait_for_events(1) == [event]
    assert inbox.envelopes[0].item_types() == ["event"]
    request = inbox.requests[0]
    assert (request.method, request.path, request.status) == ("POST", "/api/1/envelope/", 200)
    assert request.headers["Content-Type"] == "application/x-sentry-envelope"
    assert request.body_size == len(request.body) > 0
    assert inbox.request_count == 1


def test_logs_and_client_reports_are_stored(inbox: Inbox) -> None:
    records = [{"timestamp": 1.0, "level": "info", "body": f"line {i}"} for i in range(3)]
    report = {
        "timestamp": 1.0,
        "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 1}],
    }
    body = encode_envelope(
        {},
        [
            Item.from_json("log", {"items": records}, item_count=3),
            Item.from_json("client_report", report),
        ],
    )
    response = post(inbox, body)
    assert (response.status_code, response.json()) == (200, {})  # no event: no id
    assert inbox.wait_for_logs(3) == records
    assert inbox.client_reports == [report]
    assert inbox.events == []


def test_store_endpoint_takes_a_plain_event(inbox: Inbox) -> None:
    event = make_event()
    response = requests.post(
        f"{inbox.url}/api/1/store/", json=event, headers=auth(inbox), timeout=10
    )
    assert (response.status_code, response.json()) == (200, {"id": event["event_id"]})
    assert inbox.events == [event]


def test_clear_forgets_everything(inbox: Inbox) -> None:
    post(inbox, envelope_for(make_event()))
    inbox.clear()
    assert (inbox.events, inbox.envelopes, inbox.requests, inbox.request_count) == ([], [], [], 0)


# -- authentication and routing ---------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "0" * 32])
def test_bad_or_missing_key_is_401(inbox: Inbox, key: Optional[str]) -> None:
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={key}"} if key else {}
    response = requests.post(
        inbox.envelope_url, data=envelope_for(make_event()), headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid api key"}
    assert inbox.events == []
    assert inbox.requests[0].status == 401


def test_key_in_query_string_or_authorization_header(inbox: Inbox) -> None:
    body = envelope_for(make_event())
    url = f"{inbox.envelope_url}?sentry_version=7&sentry_key={inbox.public_key}"
    assert requests.post(url, data=body, timeout=10).status_code == 200
    headers = {"Authorization": f"Sentry sentry_key={inbox.public_key}"}
    body = envelope_for(make_event())
    assert (
        requests.post(inbox.envelope_url, data=body, headers=headers, timeout=10).status_code == 200
    )
    assert len(inbox.events) == 2


def test_wrong_project_unknown_path_and_method(inbox: Inbox) -> None:
    body = envelope_for(make_event())
    wrong = requests.post(
        f"{inbox.url}/api/2/envelope/", data=body, headers=auth(inbox), timeout=10
    )
    assert wrong.status_code == 403 and "project 2" in wrong.json()["detail"]
    missing = requests.post(f"{inbox.url}/nope", data=body, headers=auth(inbox), timeout=10)
    assert missing.status_code == 404 and "detail" in missing.json()
    get = requests.get(inbox.envelope_url, headers=auth(inbox), timeout=10)
    assert get.status_code == 405
    assert inbox.events == []


# -- bodies -----------------------------------------------------------------------------------


def test_gzip_body(inbox: Inbox) -> None:
    event = make_event("gzipped")
    response = post(inbox, gzip_bytes(envelope_for(event)), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert inbox.events == [event]
    assert inbox.requests[0].body[:2] == b"\x1f\x8b"  # stored as it came over the wire


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_body(inbox: Inbox, wbits: int) -> None:
    event = make_event("deflated")
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = packer.compress(envelope_for(event)) + packer.flush()
    assert post(inbox, body, headers={"Content-Encoding": "deflate"}).status_code == 200
    assert inbox.events == [event]


def test_chunked_body(inbox: Inbox) -> None:
    event = make_event("chunked")
    data = envelope_for(event)
    chunks = iter([data[:10], data[10:]])
    response = post(inbox, chunks)  # type: ignore[arg-type]
    assert inbox.requests[0].headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 200
    assert inbox.events == [event]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{}\n{not json}\n", "item 0: item header is not valid JSON"),
        (b'{}\n{"type":"event","length":500}\n{}\n', "length 500 exceeds"),
        (b"[1]\n", "envelope header must be a JSON object"),
    ],
)
def test_bad_framing_is_400(inbox: Inbox, body: bytes, detail: str) -> None:
    response = post(inbox, body)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert inbox.envelopes == []


def test_corrupt_or_unknown_encoding_is_400(inbox: Inbox) -> None:
    assert post(inbox, b"garbage", headers={"Content-Encoding": "gzip"}).status_code == 400
    response = post(inbox, b"{}\n", headers={"Content-Encoding": "br"})
    assert response.status_code == 400 and "br" in response.json()["detail"]


def test_size_limits() -> None:
    with Inbox(max_body_size=1000, max_decompressed_size=5000) as box:
        too_big = post(box, b"{}\n" + b" " * 2000)
        assert too_big.status_code == 413
        assert too_big.headers["Connection"] == "close"  # body left unread
        bomb = gzip_bytes(encode_envelope({}, [Item(type="attachment", payload=bytes(10_000))]))
        assert len(bomb) < 1000
        assert post(box, bomb, headers={"Content-Encoding": "gzip"}).status_code == 413
        assert post(box, b"{}\n").status_code == 200


def test_missing_content_length_is_411(inbox: Inbox) -> None:
    with socket.create_connection(("127.0.0.1", inbox.port), timeout=10) as sock:
        sock.sendall(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.makefile("rb").read()  # the server closes the connection
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"Content-Length required" in answer


# -- keep-alive and shutdown ------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(inbox: Inbox) -> None:
    with requests.Session() as session:
        for _ in range(3):
            assert post(inbox, envelope_for(make_event()), session=session).status_code == 200
    assert inbox.connection_count == 1
    assert {r.connection for r in inbox.requests} == {1}


def test_stop_closes_keep_alive_connections_and_leaks_no_thread() -> None:
    before = set(threading.enumerate())
    box = Inbox().start()
    session = requests.Session()
    assert post(box, envelope_for(make_event()), session=session).status_code == 200
    assert box.connection_count == 1  # the connection is now idle in the pool
    box.stop()
    leftover = [t for t in threading.enumerate() if t not in before]
    assert leftover == []
    with pytest.raises(requests.ConnectionError):
        post(box, envelope_for(make_event()), session=session)
    session.close()
    box.stop()  # idempotent


def test_stop_wakes_a_handler_in_a_long_delay() -> None:
    before = set(threading.enumerate())
    with Inbox() as box:
        box.inject(Fault(delay=600))
        with pytest.raises(requests.ReadTimeout):
            post(box, envelope_for(make_event()), timeout=0.2)
    assert [t for t in threading.enumerate() if t not in before] == []


def test_context_manager_and_restart() -> None:
    with Inbox() as box:
        port = box.port
        assert post(box, b"{}\n").status_code == 200
    with pytest.raises(requests.ConnectionError):
        post(box, b"{}\n")
    with box:  # restarts on the same port with the same DSN
        assert box.port == port
        assert post(box, b"{}\n").status_code == 200


def test_start_twice_is_an_error(inbox: Inbox) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        inbox.start()


# -- waiting ----------------------------------------------------------------------------------


def test_wait_for_events_timeout_says_what_arrived(inbox: Inbox) -> None:
    post(inbox, envelope_for(make_event()))
    with pytest.raises(TimeoutError, match=r"expected 2 event\(s\) within 0.01s, got 1"):
        inbox.wait_for_events(2, timeout=0.01)
    with pytest.raises(TimeoutError, match=r"got 1"):
        inbox.wait_for_requests(2, timeout=0.01)
    with pytest.raises(TimeoutError, match="condition not met"):
        inbox.wait_for(lambda: len(inbox.events) > 5, timeout=0.01)


def test_wait_for_events_wakes_on_arrival(inbox: Inbox) -> None:
    event = make_event()
    sender = threading.Thread(target=post, args=(inbox, envelope_for(event)))
    sender.start()
    try:
        assert inbox.wait_for_events(1) == [event]
        assert inbox.wait_for(lambda: inbox.request_count == 1)
    finally:
        sender.join()


# -- faults -----------------------------------------------------------------------------------


def test_fail_answers_then_recovers(inbox: Inbox) -> None:
    inbox.fail(503, times=2, headers={"Retry-After": "7"})
    statuses = [post(inbox, envelope_for(make_event())) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["Retry-After"] == "7"
    assert statuses[0].json() == {"detail": "injected fault: HTTP 503"}
    assert len(inbox.events) == 1  # failed requests are not stored
    assert [r.status for r in inbox.requests] == [503, 503, 200]


def test_429_with_rate_limit_header(inbox: Inbox) -> None:
    limits = "60:error;default:key, 10::organization"
    inbox.inject(Fault(status=429, headers={"X-Sentry-Rate-Limits": limits}))
    response = post(inbox, envelope_for(make_event()))
    assert response.status_code == 429
    assert response.headers["X-Sentry-Rate-Limits"] == limits
    assert inbox.events == []


def test_success_with_headers_and_store_override(inbox: Inbox) -> None:
    first, second = make_event("kept"), make_event("lost answer")
    inbox.inject(
        Fault(headers={"X-Sentry-Rate-Limits": "60:log_item:key"}),
        Fault(status=503, store=True),
    )
    ok = post(inbox, envelope_for(first))
    assert ok.status_code == 200 and ok.json() == {"id": first["event_id"]}
    assert ok.headers["X-Sentry-Rate-Limits"] == "60:log_item:key"
    assert post(inbox, envelope_for(second)).status_code == 503
    assert inbox.events == [first, second]


def test_fault_body(inbox: Inbox) -> None:
    inbox.inject(Fault(status=500, body=b"<html>oops</html>"))
    response = post(inbox, b"{}\n")
    assert (response.status_code, response.content) == (500, b"<html>oops</html>")


def test_success_fault_does_not_hide_a_client_error(inbox: Inbox) -> None:
    inbox.set_fault(Fault(status=200, headers={"X-Test": "1"}))
    assert post(inbox, b"not an envelope").status_code == 400
    assert post(inbox, b"{}\n", headers={"X-Sentry-Auth": "Sentry sentry_key=x"}).status_code == 401


def test_close_drops_the_connection_without_answer(inbox: Inbox) -> None:
    inbox.inject(Fault(close=True))
    with pytest.raises(requests.ConnectionError):
        post(inbox, envelope_for(make_event()))
    assert inbox.requests[0].status is None
    assert inbox.events == []
    assert post(inbox, envelope_for(make_event())).status_code == 200  # next one is fine
    assert len(inbox.events) == 1


def test_close_after_storing_models_a_lost_answer(inbox: Inbox) -> None:
    event = make_event()
    inbox.inject(Fault(close=True, store=True))
    with pytest.raises(requests.ConnectionError):
        post(inbox, envelope_for(event))
    assert inbox.events == [event]


def test_persistent_fault_until_cleared(inbox: Inbox) -> None:
    inbox.set_fault(Fault(status=502))
    assert [post(inbox, b"{}\n").status_code for _ in range(3)] == [502, 502, 502]
    inbox.set_fault(None)
    assert post(inbox, b"{}\n").status_code == 200


def test_responder_every_other_request(inbox: Inbox) -> None:
    inbox.set_responder(lambda index: Fault(status=503) if index % 2 == 0 else None)
    assert [post(inbox, b"{}\n").status_code for _ in range(4)] == [503, 200, 503, 200]


def test_one_shot_faults_come_before_responder_and_persistent(inbox: Inbox) -> None:
    inbox.set_fault(Fault(status=500))
    inbox.set_responder(lambda index: Fault(status=502) if index == 1 else None)
    inbox.inject(Fault(status=418))
    assert [post(inbox, b"{}\n").status_code for _ in range(3)] == [418, 502, 500]
    inbox.reset_faults()
    assert post(inbox, b"{}\n").status_code == 200


def test_refuse_and_accept(inbox: Inbox) -> None:
    port = inbox.port
    with requests.Session() as session:
        assert post(inbox, b"{}\n", session=session).status_code == 200
        inbox.refuse()
        assert inbox.refusing
        with pytest.raises(requests.ConnectionError):
            post(inbox, b"{}\n", session=session)  # pooled connection is gone too
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        inbox.accept()
        assert not inbox.refusing and inbox.port == port
        assert post(inbox, b"{}\n", session=session).status_code == 200
        inbox.accept()  # already accepting: no-op
    assert [r.status for r in inbox.requests] == [200, 200]


def test_refuse_then_stop(inbox: Inbox) -> None:
    inbox.refuse()
    inbox.stop()
    assert not inbox.refusing


# -- callbacks and CLI ------------------------------------------------------------------------


def test_on_event_callback_runs_before_the_answer() -> None:
    seen: list[dict[str, Any]] = []
    with Inbox(on_event=seen.append) as box:
        event = make_event()
        post(box, envelope_for(event))
        assert seen == [event]


def test_a_failing_callback_does_not_break_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    def explode(event: dict[str, Any]) -> None:
        raise RuntimeError("printer broke")

    with Inbox(on_event=explode) as box:
        assert post(box, envelope_for(make_event())).status_code == 200
    assert "printer broke" in capsys.readouterr().err


def test_format_event_line() -> None:
    event = make_event("disk full\non /var", tags={"host": "web1", "region": "eu"})
    line = format_event_line(event)
    assert line.endswith(" ERROR app.db: disk full\\non /var [host=web1, region=eu]")
    assert line[2] == ":" and line[5] == ":"  # HH:MM:SS
    exc = {"values": [{"type": "KeyError", "value": "'a'"}, {"type": "ValueError", "value": "bad"}]}
    assert format_event_line({"level": "fatal", "exception": exc}).endswith(
        "FATAL -: ValueError: bad"
    )
    assert "ValueError: bad" in format_event_line(make_event("ctx", exception=exc))
    assert format_event_line({"message": "plain", "timestamp": "2024-01-01T10:00:00Z"}).endswith(
        "ERROR -: plain"
    )


def test_serve_forever_cli_prints_dsn_and_events() -> None:
    out = io.StringIO()
    stop = threading.Event()
    key = "ab" * 16
    result: list[int] = []
    runner = threading.Thread(
        target=lambda: result.append(serve_forever_cli(0, out, public_key=key, stop=stop))
    )
    runner.start()
    try:
        # The DSN line is the CLI's only output until an event arrives.
        while "SENTRY_DSN=" not in out.getvalue():
            stop.wait(0.01)
        dsn = out.getvalue().split("SENTRY_DSN=", 1)[1].split()[0]
        public_key, _, rest = dsn[len("http://") :].partition("@")
        assert public_key == key
        url = f"http://{rest.rsplit('/', 1)[0]}/api/1/envelope/"
        event = make_event("from the cli test", tags={"k": "v"})
        headers = {"X-Sentry-Auth": f"Sentry sentry_key={key}"}
        assert requests.post(url, data=envelope_for(event), headers=headers, timeout=10).ok
        assert "ERROR app.db: from the cli test [k=v]" in out.getvalue()
    finally:
        stop.set()
        runner.join()
    assert result == [0]
    assert out.getvalue().rstrip().endswith("Sentry inbox stopped")


# -- the Relay check itself -------------------------------------------------------------------


def test_relay_check_accepts_a_good_event() -> None:
    normalized = assert_relay_clean(make_event())
    assert normalized["level"] == "error"


def test_relay_check_reports_bad_fields() -> None:
    bad = make_event(level="warn", tags={"k": "line\nbreak"})
    problems = relay_problems(bad)
    assert any("invalid level" in p for p in problems)
    with pytest.raises(AssertionError, match="Relay's normalizer reports problems"):
        assert_relay_clean(bad)


@pytest.mark.no_relay_check
def test_marker_lets_malformed_events_through(inbox: Inbox) -> None:
    assert post(inbox, envelope_for(make_event(level="warn"))).status_code == 200
    assert relay_problems(inbox.events[0])


# -- foxray -----------------------------------------------------------------------------------


def test_foxray_receives_an_envelope(foxray: Any) -> None:
    dsn = foxray.dsn
    key, _, rest = dsn[len("http://") :].partition("@")
    host, _, project = rest.rpartition("/")
    event = make_event("hello foxray")
    event["timestamp"] = time.time()
    response = requests.post(
        f"http://{host}/api/{project}/envelope/",
        data=gzip_bytes(envelope_for(event)),
        headers={
            "X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key}",
            "Content-Type": "application/x-sentry-envelope",
            "Content-Encoding": "gzip",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    stored = foxray.wait_for_event(event["event_id"])
    assert stored["event_id"] == event["event_id"]
    assert stored["level"] == "error"
    assert foxray.events(event["event_id"]) == [stored]
