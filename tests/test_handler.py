"""SentryHandler end to end: records → events at the inbox (Relay-checked at teardown)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentry_log_handler import SentryHandler
from sentry_log_handler.inbox import Inbox


@pytest.fixture
def logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


@pytest.fixture
def handler(inbox: Inbox, logger: logging.Logger) -> SentryHandler:
    h = SentryHandler(inbox.dsn)
    logger.addHandler(h)
    return h


def one_event(inbox: Inbox, handler: SentryHandler) -> dict[str, Any]:
    assert handler.flush(10)
    (event,) = inbox.wait_for_events(1)
    return event


def test_done_when_dictconfig(inbox: Inbox) -> None:
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "sentry": {
                "class": "sentry_log_handler.SentryHandler",
                "level": "ERROR",
                "dsn": inbox.dsn,
                "environment": "staging",
            }
        },
        "loggers": {"shop": {"handlers": ["sentry"], "level": "INFO", "propagate": False}},
    })
    log = logging.getLogger("shop")
    (h,) = log.handlers
    try:
        assert isinstance(h, SentryHandler)
        log.error(
            "payment %s declined", "card",
            extra={"tags": {"feature": "pay"}, "user_id": "u-1",
                   "fingerprint": ["pay", "declined"], "order_id": 42},
        )
        event = one_event(inbox, h)
    finally:
        log.removeHandler(h)
        h.close()
    assert event["logentry"] == {"message": "payment %s declined", "params": ["card"],
                                 "formatted": "payment card declined"}
    assert event["logger"] == "shop"
    assert event["level"] == "error"
    assert event["environment"] == "staging"
    assert event["tags"]["feature"] == "pay"
    assert event["user"] == {"id": "u-1"}
    assert event["fingerprint"] == ["pay", "declined"]
    assert event["extra"] == {"order_id": 42}


def test_fileconfig(inbox: Inbox, tmp_path: Path) -> None:
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent(f"""
        [loggers]
        keys=root,filecfg
        [handlers]
        keys=sentry
        [formatters]
        keys=
        [logger_root]
        level=WARNING
        handlers=
        [logger_filecfg]
        level=INFO
        handlers=sentry
        qualname=filecfg
        propagate=0
        [handler_sentry]
        class=sentry_log_handler.SentryHandler
        level=WARNING
        args=('{inbox.dsn}', 'WARNING')
    """))
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    log = logging.getLogger("filecfg")
    (h,) = log.handlers
    try:
        log.warning("from fileConfig")
        event = one_event(inbox, h)  # type: ignore[arg-type]
    finally:
        log.removeHandler(h)
        h.close()
    assert event["level"] == "warning"


@pytest.mark.parametrize(
    ("levelno", "expected"),
    [(logging.CRITICAL, "fatal"), (logging.ERROR, "error"), (45, "error"), (55, "fatal"),
     (logging.WARNING, "warning"), (35, "warning"), (logging.INFO, "info"),
     (logging.DEBUG, "debug"), (5, "debug")],
)
def test_level_mapping(inbox: Inbox, logger: logging.Logger, levelno: int, expected: str) -> None:
    h = SentryHandler(inbox.dsn, level=1)
    logger.addHandler(h)
    logger.setLevel(1)
    logger.log(levelno, "custom")
    assert one_event(inbox, h)["level"] == expected


def test_extra_conventions(inbox: Inbox, logger: logging.Logger, handler: SentryHandler) -> None:
    logger.error("x", extra={"tags": ["a:1", "b:2", "broken"], "user": {"username": "ann"},
                             "user_id": 7, "payload": {"k": [1, 2]}})
    event = one_event(inbox, handler)
    assert event["tags"]["a"] == "1" and event["tags"]["b"] == "2"
    assert event["user"]["id"] == "7" and event["user"]["username"] == "ann"
    assert event["extra"]["payload"] == {"k": [1, 2]}
    assert event["extra"]["rejected_tags"] == ["broken"]  # kept, not lost
    standard = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)
    assert not standard & set(event["extra"])
    assert event["threads"]["values"][0]["name"] == threading.current_thread().name
    assert event["contexts"]["process"]["pid"] == os.getpid()


def test_exception_chain_cause_first(inbox: Inbox, logger: logging.Logger,
                                     handler: SentryHandler) -> None:
    def inner() -> None:
        raise KeyError("missing")

    try:
        try:
            inner()
        except KeyError as exc:
            raise RuntimeError("lookup failed") from exc
    except RuntimeError:
        logger.exception("it broke")
    event = one_event(inbox, handler)
    values = event["exception"]["values"]
    assert [v["type"] for v in values] == ["KeyError", "RuntimeError"]
    assert values[-1]["mechanism"]["type"] == "logging"
    assert values[-1]["mechanism"]["handled"] is True
    frames = values[0]["stacktrace"]["frames"]
    assert frames[-1]["function"].endswith("inner")
    assert frames[-1]["context_line"].strip() == 'raise KeyError("missing")'
    assert frames[-1]["in_app"] is True


def test_stack_info_ends_at_caller(inbox: Inbox, logger: logging.Logger,
                                   handler: SentryHandler) -> None:
    logger.error("with stack", stack_info=True)
    event = one_event(inbox, handler)
    frames = event["threads"]["values"][0]["stacktrace"]["frames"]
    assert frames[-1]["function"].endswith("test_stack_info_ends_at_caller")
    assert all("logging/__init__" not in f.get("abs_path", "") for f in frames)


def test_local_variables_only_when_asked(inbox: Inbox, logger: logging.Logger) -> None:
    h = SentryHandler(inbox.dsn, include_local_variables=True)
    logger.addHandler(h)

    def fails(password: str, count: int) -> None:
        raise ValueError(count)

    try:
        fails("hunter2", 3)
    except ValueError:
        logger.exception("with locals")
    event = one_event(inbox, h)
    frame = event["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["vars"]["password"] == "[Filtered]"
    assert frame["vars"]["count"] in (3, "3")


def test_password_filtered_and_ip_scrubbed(inbox: Inbox, logger: logging.Logger,
                                           handler: SentryHandler) -> None:
    logger.error("login", extra={"password": "hunter2", "api_key": "k", "ip_address": "1.2.3.4",
                                 "request_id": "r-1"})
    extra = one_event(inbox, handler)["extra"]
    assert extra["password"] == "[Filtered]"
    assert extra["api_key"] == "[Filtered]"
    assert extra["ip_address"] == "[Filtered]"
    assert extra["request_id"] == "r-1"


def test_breadcrumbs_same_thread_only(inbox: Inbox, logger: logging.Logger,
                                      handler: SentryHandler) -> None:
    logger.debug("below breadcrumb level")
    logger.info("step one", extra={"step": 1})
    logger.warning("step two")

    def other() -> None:
        logger.info("from another thread")

    t = threading.Thread(target=other)
    t.start()
    t.join()
    logger.error("boom")
    event = one_event(inbox, handler)
    crumbs = event["breadcrumbs"]["values"]
    assert [c["message"] for c in crumbs] == ["step one", "step two"]
    assert crumbs[0]["data"] == {"step": 1}
    assert crumbs[1]["level"] == "warning"


def test_breadcrumbs_per_asyncio_task(inbox: Inbox, logger: logging.Logger,
                                      handler: SentryHandler) -> None:
    async def request(name: str, gate: asyncio.Event) -> None:
        logger.info("start %s", name)
        await gate.wait()
        logger.error("fail %s", name)

    async def main() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(request(n, gate)) for n in ("a", "b")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert handler.flush(10)
    events = inbox.wait_for_events(2)
    for event in events:
        name = event["logentry"]["formatted"][-1]
        assert [c["message"] for c in event["breadcrumbs"]["values"]] == [f"start {name}"]


def test_no_dsn_is_a_noop(monkeypatch: pytest.MonkeyPatch, logger: logging.Logger) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    h = SentryHandler()
    logger.addHandler(h)
    logger.error("nowhere")
    assert h.flush(1) is True
    assert not h.client.enabled
    assert h.client.worker._thread is None


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="scheme"):
        SentryHandler("nope://k@h/1")
    with pytest.raises(ValueError, match="max_queue_size"):
        SentryHandler("http://k@h/1", max_queue_size=-1)
    with pytest.raises(ValueError, match="sample_rate"):
        SentryHandler("http://k@h/1", sample_rate=2)


def test_recursion_guard(inbox: Inbox) -> None:
    root = logging.getLogger()
    old_level = root.level
    urllib3 = logging.getLogger("urllib3")
    old_u = urllib3.level
    h = SentryHandler(inbox.dsn, level=logging.DEBUG, breadcrumb_level=None)
    root.addHandler(h)
    root.setLevel(logging.DEBUG)
    urllib3.setLevel(logging.DEBUG)
    try:
        logging.getLogger("app").error("only me")
        assert h.flush(10)
        logging.getLogger("requests").error("not me")
        logging.getLogger("sentry_log_handler.x").error("not me either")
        assert h.flush(10)
    finally:
        root.removeHandler(h)
        root.setLevel(old_level)
        urllib3.setLevel(old_u)
        h.close()
    assert [e["logentry"]["message"] for e in inbox.events] == ["only me"]


def test_many_threads_no_loss(inbox: Inbox, logger: logging.Logger,
                              handler: SentryHandler) -> None:
    def work(n: int) -> None:
        for i in range(500):
            logger.error("t%d e%d", n, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handler.flush(120)
    assert len(inbox.wait_for_events(8000, timeout=60)) == 8000
    assert handler.client.stats()["dropped"] == {}


def test_queue_overflow_is_counted(inbox: Inbox, logger: logging.Logger) -> None:
    h = SentryHandler(inbox.dsn, max_queue_size=5)
    logger.addHandler(h)
    inbox.set_fault(__import__("sentry_log_handler.inbox", fromlist=["Fault"]).Fault(delay=0.5))
    for i in range(50):
        logger.error("e%d", i)
    inbox.reset_faults()
    assert h.flush(30) is True
    stats = h.client.stats()
    dropped = stats["dropped"].get("queue_overflow", 0)
    assert dropped > 0
    assert stats["delivered"] + dropped == 50
    # the drops are reported to Sentry as a client report once the queue drained
    reports = inbox.wait_for(lambda: inbox.client_reports, timeout=10)
    total = sum(d["quantity"] for r in reports for d in r["discarded_events"]
                if d["reason"] == "queue_overflow")
    assert total == dropped


def test_flush_false_when_undeliverable(logger: logging.Logger) -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    h = SentryHandler(f"http://k@127.0.0.1:{port}/1", max_retries=0)
    logger.addHandler(h)
    logger.error("lost")
    assert h.flush(10) is False
    assert h.client.stats()["dropped"].get("network_error") == 1


def test_close_is_idempotent_and_flushes(inbox: Inbox, logger: logging.Logger) -> None:
    h = SentryHandler(inbox.dsn)
    logger.addHandler(h)
    for i in range(20):
        logger.error("e%d", i)
    h.close()
    h.close()
    assert len(inbox.events) == 20
    assert not h.client.worker._thread or not h.client.worker._thread.is_alive()
    logger.error("after close")  # ignored, no error
    assert len(inbox.events) == 20


def test_before_send_and_sample_rate(inbox: Inbox, logger: logging.Logger) -> None:
    def before_send(event: dict[str, Any], hint: dict[str, Any]) -> Any:
        if "drop" in event["logentry"]["message"]:
            return None
        event["tags"] = {"seen": "yes"}
        return event

    h = SentryHandler(inbox.dsn, before_send=before_send)
    logger.addHandler(h)
    logger.error("keep")
    logger.error("drop me")
    event = one_event(inbox, h)
    assert event["tags"] == {"seen": "yes"}
    assert h.client.stats()["dropped"] == {"before_send": 1}
    h0 = SentryHandler(inbox.dsn, sample_rate=0.0)
    logger.addHandler(h0)
    logger.error("sampled out")
    h0.flush(5)
    assert h0.client.stats()["dropped"] == {"sample_rate": 1}


def test_emit_never_raises(inbox: Inbox, logger: logging.Logger, handler: SentryHandler,
                           capsys: pytest.CaptureFixture[str]) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        __str__ = __repr__

    logger.error("bad %s", "arg", extra={"obj": Hostile(), "tags": Hostile()})
    # A formatting error: handed to our handler alone (pytest's own handler would raise).
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "%d needs a number",
                               ("not a number",), None)
    handler.handle(record)
    assert handler.flush(10)
    first, second = inbox.wait_for_events(2)
    assert first["extra"]["obj"].startswith("<")
    assert second["logentry"]["message"] == "%d needs a number"
    assert "not a number" in second["logentry"]["formatted"]
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_sends_only_its_own(inbox: Inbox, logger: logging.Logger) -> None:
    h = SentryHandler(inbox.dsn)
    logger.addHandler(h)
    inbox.set_fault(__import__("sentry_log_handler.inbox", fromlist=["Fault"]).Fault(delay=0.3))
    for i in range(3):
        logger.error("parent %d", i)   # queued, being sent slowly while we fork
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            logger.error("child event")
            code = 0 if h.flush(20) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    inbox.reset_faults()
    assert os.waitstatus_to_exitcode(status) == 0
    assert h.flush(20)
    messages = sorted(e["logentry"].get("formatted", e["logentry"]["message"])
                      for e in inbox.events)
    assert messages == ["child event", "parent 0", "parent 1", "parent 2"]


def test_handler_to_foxray(foxray: Any, logger: logging.Logger) -> None:
    h = SentryHandler(foxray.dsn)
    logger.addHandler(h)
    try:
        raise ValueError("end to end")
    except ValueError:
        logger.exception("foxray %s", "path", extra={"tags": {"feature": "e2e"}})
    assert h.flush(10)
    stored = foxray.wait_for_event(_last_event_id(h))
    assert stored["exception"]["values"][-1]["type"] == "ValueError"


def _last_event_id(h: SentryHandler) -> str:
    return h.client.last_event_id  # type: ignore[no-any-return]


if sys.version_info >= (3, 11):
    def test_exception_group(inbox: Inbox, logger: logging.Logger,
                             handler: SentryHandler) -> None:
        try:
            raise ExceptionGroup("many", [ValueError("a"), TypeError("b")])  # noqa: F821
        except Exception:
            logger.exception("group")
        values = one_event(inbox, handler)["exception"]["values"]
        assert {v["type"] for v in values} >= {"ExceptionGroup", "ValueError", "TypeError"}


# -- hostile extras, generated ------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from relay_check import assert_relay_clean  # noqa: E402


class _RaisingRepr:
    """Its repr raises while the test body runs (hypothesis itself must be able to print it)."""

    armed = False

    def __repr__(self) -> str:
        if _RaisingRepr.armed:
            raise RuntimeError("no repr")
        return "<_RaisingRepr>"


_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=50),
    st.binary(max_size=50), st.datetimes(), st.just(_RaisingRepr()),
    st.integers(min_value=1, max_value=40).map(lambda n: "x" * (n * 1000)),  # huge strings
)
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                               max_size=5),
    max_leaves=20,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(extra=st.dictionaries(st.text(min_size=1, max_size=20).filter(
    lambda k: k not in _STANDARD_KEYS), _values, max_size=6))
def test_generated_bad_extras_never_raise(inbox: Inbox, logger: logging.Logger,
                                          extra: dict[str, Any]) -> None:
    """Whatever lands in ``extra=``, emit does not raise and the event arrives (the inbox
    fixture runs Relay's normalizer over every one of them at teardown)."""
    h = SentryHandler(inbox.dsn)
    logger.addHandler(h)
    try:
        before = len(inbox.events)
        _RaisingRepr.armed = True
        try:
            logger.error("generated", extra=extra)
            assert h.flush(10)
        finally:
            _RaisingRepr.armed = False
        assert len(inbox.wait_for_events(before + 1)) == before + 1
        assert_relay_clean(inbox.events[-1])
    finally:
        logger.removeHandler(h)
        h.close()


_STANDARD_KEYS = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}
