"""SentryProcessor end to end: structlog calls → events at the inbox (Relay-checked at teardown).

Every test configures structlog itself and the autouse fixture puts the defaults back; every
processor and handler a test builds goes through ``pipes``, which closes them (and detaches
handlers) before the inbox stops.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars
from structlog.processors import JSONRenderer, add_log_level, dict_tracebacks, format_exc_info
from structlog.stdlib import ProcessorFormatter, render_to_log_kwargs
from structlog.testing import CapturingLoggerFactory

from sentry_log_handler import SentryHandler, SentryProcessor, dedupe
from sentry_log_handler.inbox import Inbox

# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    clear_contextvars()
    yield
    structlog.reset_defaults()
    clear_contextvars()


class Pipes:
    """Builds processors/handlers for a test and closes them all at teardown."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._processors: list[SentryProcessor] = []
        self._attached: list[tuple[logging.Logger, logging.Handler]] = []

    def processor(self, **kwargs: Any) -> SentryProcessor:
        if "client" not in kwargs and "handler" not in kwargs:
            kwargs.setdefault("dsn", self.dsn)
        proc = SentryProcessor(**kwargs)
        self._processors.append(proc)
        return proc

    def handler(self, logger: Optional[logging.Logger] = None, **kwargs: Any) -> SentryHandler:
        handler = SentryHandler(self.dsn, **kwargs)
        self.attach(logger, handler)
        return handler

    def attach(self, logger: Optional[logging.Logger], handler: logging.Handler) -> None:
        if logger is not None:
            logger.addHandler(handler)
        self._attached.append((logger or logging.getLogger(), handler))

    def flush(self) -> None:
        for proc in self._processors:
            assert proc.flush(10)
        for _, handler in self._attached:
            handler.flush()

    def close(self) -> None:
        for logger, handler in reversed(self._attached):
            logger.removeHandler(handler)
            handler.close()
        for proc in reversed(self._processors):
            proc.close()


@pytest.fixture
def pipes(inbox: Inbox) -> Iterator[Pipes]:
    made = Pipes(inbox.dsn)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def stdlib_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"test_processor.{request.node.name}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def native(*processors: Any) -> tuple[Any, CapturingLoggerFactory]:
    """structlog's native chain; the factory records what the final processor produced."""
    factory = CapturingLoggerFactory()
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(logging.NOTSET),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return structlog.get_logger(), factory


def bridged(*processors: Any) -> Any:
    """The ``structlog.stdlib`` bridge: the chain ends in stdlib logging."""
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def rendered(factory: CapturingLoggerFactory, index: int = -1) -> dict[str, Any]:
    """The JSON the renderer produced for one call (proof that the chain went on)."""
    call = factory.logger.calls[index]
    result: dict[str, Any] = json.loads(call.args[0])
    return result


def by_message(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["logentry"]["message"]: event for event in events}


def one_event(inbox: Inbox, *flushables: Any) -> dict[str, Any]:
    for item in flushables:
        assert item.flush(10)
    (event,) = inbox.wait_for_events(1)
    return event


def _raise(exc: BaseException) -> None:
    raise exc


def _caught(exc: BaseException) -> BaseException:
    try:
        _raise(exc)
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


# -- the "done when" -----------------------------------------------------------------


def test_done_when_chain(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys=["feature"])
    log, factory = native(merge_contextvars, add_log_level, proc, JSONRenderer())
    bind_contextvars(request_id="req-7")
    log.error("payment declined", order_id=42, user_id="u-1", feature="pay")
    event = one_event(inbox, proc)

    assert event["logentry"]["message"] == "payment declined"
    assert event["level"] == "error"
    assert event["tags"]["feature"] == "pay"
    assert event["user"] == {"id": "u-1"}
    assert event["extra"] == {"order_id": 42, "request_id": "req-7"}
    assert event["threads"]["values"][0]["current"] is True
    assert event["contexts"]["process"]["pid"] > 0
    # The renderer still got the whole, unchanged event.
    assert rendered(factory) == {
        "event": "payment declined", "level": "error", "order_id": 42,
        "user_id": "u-1", "feature": "pay", "request_id": "req-7",
    }


def test_log_exception_delivers_the_exception(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor()
    log, factory = native(add_log_level, proc, format_exc_info, JSONRenderer())
    try:
        _raise(ValueError("card expired"))
    except ValueError:
        log.exception("charge failed", order_id=7)
    event = one_event(inbox, proc)

    (value,) = event["exception"]["values"]
    assert value["type"] == "ValueError"
    assert value["value"] == "card expired"
    assert value["mechanism"]["type"] == "structlog"
    assert value["mechanism"]["handled"] is True
    assert value["stacktrace"]["frames"][-1]["function"] == "_raise"
    assert event["extra"] == {"order_id": 7}
    assert "ValueError: card expired" in rendered(factory)["exception"]


# -- mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_add_log_level", [True, False], ids=["add_log_level", "method"])
def test_level_mapping(inbox: Inbox, pipes: Pipes, with_add_log_level: bool) -> None:
    proc = pipes.processor(level=logging.DEBUG)
    chain = [add_log_level, proc] if with_add_log_level else [proc]
    log, _ = native(*chain, JSONRenderer())
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.warn("wn")
    log.error("e")
    log.exception("x")
    log.critical("c")
    log.fatal("f")
    log.log(logging.WARNING, "lw")
    assert proc.flush(10)
    events = by_message(inbox.wait_for_events(9))
    assert {message: event["level"] for message, event in events.items()} == {
        "d": "debug", "i": "info", "w": "warning", "wn": "warning", "e": "error",
        "x": "error", "c": "fatal", "f": "fatal", "lw": "warning",
    }


def test_level_key_from_another_processor_wins(inbox: Inbox, pipes: Pipes) -> None:
    def custom_level(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict["level"] = "WARNING"
        return event_dict

    proc = pipes.processor(level="warning")
    log, _ = native(custom_level, proc, JSONRenderer())
    log.info("raised by a processor")
    assert one_event(inbox, proc)["level"] == "warning"


def test_tag_keys_user_fingerprint_extra(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys=["feature", "region"])
    log, _ = native(merge_contextvars, add_log_level, proc, JSONRenderer())
    bind_contextvars(request_id="req-9", region="eu")
    log.error(
        "mapped",
        feature="pay",
        user_id=7,
        user={"username": "ann", "segment": "gold"},
        fingerprint=["{{ default }}", "pay"],
        tags={"team": "payments"},
        order={"id": 42, "items": [1, 2]},
    )
    event = one_event(inbox, proc)
    assert {k: event["tags"][k] for k in ("feature", "region", "team")} == {
        "feature": "pay", "region": "eu", "team": "payments",
    }
    assert event["user"] == {"id": "7", "username": "ann", "segment": "gold"}
    assert event["fingerprint"] == ["{{ default }}", "pay"]
    assert event["extra"] == {"request_id": "req-9", "order": {"id": 42, "items": [1, 2]}}
    assert "logger" not in event  # a native chain has no logger name unless one is bound


def test_explicit_tag_keys_may_name_mapped_keys(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys=["user_id", "logger"])
    log, _ = native(add_log_level, proc, JSONRenderer())
    log.error("tagged", user_id="u-2", logger="shop.pay")
    event = one_event(inbox, proc)
    assert (event["tags"]["user_id"], event["tags"]["logger"]) == ("u-2", "shop.pay")
    assert (event["user"], event["logger"]) == ({"id": "u-2"}, "shop.pay")


def test_stack_info_sends_the_callers_stack(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor()
    log, _ = native(add_log_level, proc, JSONRenderer())
    log.error("where am I", stack_info=True)
    (thread,) = one_event(inbox, proc)["threads"]["values"]
    frames = thread["stacktrace"]["frames"]
    assert frames[-1]["function"] == "test_stack_info_sends_the_callers_stack"


def test_all_tags(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys="__all__")
    log, _ = native(merge_contextvars, add_log_level, proc, JSONRenderer())
    bind_contextvars(request_id="req-1")
    log.error(
        "all tags",
        feature="pay",
        count=3,
        ratio=0.5,
        flag=True,
        nested={"a": 1},
        nothing=None,
        long="x" * 300,
        multiline="a\nb",
        **{"bad key": "v", "k" * 33: "v"},
    )
    event = one_event(inbox, proc)
    tags = event["tags"]
    assert {k: tags[k] for k in ("feature", "count", "ratio", "flag", "request_id")} == {
        "feature": "pay", "count": "3", "ratio": "0.5", "flag": "True", "request_id": "req-1",
    }
    assert not {"event", "level", "nested", "long", "multiline", "bad key"} & set(tags)
    assert set(event["extra"]) == {"nested", "nothing", "long", "multiline", "bad key", "k" * 33}


def test_logger_name_from_add_logger_name_and_stdlib(inbox: Inbox, pipes: Pipes,
                                                     stdlib_logger: logging.Logger) -> None:
    proc = pipes.processor()
    bridged(structlog.stdlib.add_logger_name, proc, JSONRenderer())
    stdlib_logger.addHandler(logging.StreamHandler(io.StringIO()))
    structlog.get_logger(stdlib_logger.name).error("named")
    assert one_event(inbox, proc)["logger"] == stdlib_logger.name


def test_positional_args_of_the_stdlib_bridge(inbox: Inbox, pipes: Pipes,
                                              stdlib_logger: logging.Logger) -> None:
    proc = pipes.processor()
    bridged(proc, structlog.stdlib.PositionalArgumentsFormatter(), JSONRenderer())
    stdlib_logger.addHandler(logging.StreamHandler(io.StringIO()))
    structlog.get_logger(stdlib_logger.name).error("card %s declined", "visa")
    assert one_event(inbox, proc)["logentry"] == {
        "message": "card %s declined", "params": ["visa"], "formatted": "card visa declined",
    }


def test_returns_the_same_dict_unchanged(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor()
    event_dict: dict[str, Any] = {"event": "untouched", "level": "error", "n": [1]}
    before = dict(event_dict)
    assert proc(None, "error", event_dict) is event_dict
    assert event_dict == before
    one_event(inbox, proc)


def test_event_id_key(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(event_id_key="sentry_id")
    log, factory = native(add_log_level, proc, JSONRenderer())
    log.error("with id")
    log.info("not an event")
    event = one_event(inbox, proc)
    assert rendered(factory, 0)["sentry_id"] == event["event_id"]
    assert "sentry_id" not in rendered(factory, 1)
    assert "sentry_id" not in event.get("extra", {})


def test_extra_is_a_snapshot(inbox: Inbox, pipes: Pipes) -> None:
    """Keys changed after the call (by later processors or the app) are not in the event."""
    release = threading.Event()

    def hold(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        release.wait(30)  # keeps the worker busy until the test changed the dict
        return event

    proc = pipes.processor(before_send=hold)
    event_dict: dict[str, Any] = {"event": "snap", "level": "error", "a": 1}
    proc(None, "error", event_dict)
    event_dict["a"] = 2
    event_dict["b"] = 3
    release.set()
    assert one_event(inbox, proc)["extra"] == {"a": 1}


def test_no_dsn_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    proc = SentryProcessor()
    try:
        event_dict = {"event": "nowhere", "level": "error"}
        assert proc(None, "error", event_dict) is event_dict
        assert event_dict == {"event": "nowhere", "level": "error"}
        assert proc.flush(1) is True
        assert not proc.client.enabled
        assert proc.client.worker._thread is None
    finally:
        proc.close()


def test_bad_configuration_fails_at_construction(inbox: Inbox) -> None:
    with pytest.raises(ValueError, match="tag_keys"):
        SentryProcessor(inbox.dsn, tag_keys="feature")
    with pytest.raises(ValueError, match="bad key"):
        SentryProcessor(inbox.dsn, tag_keys=["bad key"])
    with pytest.raises(ValueError, match="loud"):
        SentryProcessor(inbox.dsn, level="loud")
    owner = SentryProcessor(inbox.dsn)
    try:
        with pytest.raises(TypeError, match="not both"):
            SentryProcessor(inbox.dsn, client=owner.client)
    finally:
        owner.close()


# -- exceptions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "before", [[], [format_exc_info], [dict_tracebacks]], ids=["raw", "format_exc_info",
                                                               "dict_tracebacks"]
)
def test_exception_whatever_ran_before(inbox: Inbox, pipes: Pipes, before: list[Any]) -> None:
    proc = pipes.processor()
    log, _ = native(add_log_level, *before, proc, JSONRenderer())
    try:
        _raise(KeyError("sku-1"))
    except KeyError:
        log.exception("lookup failed")
    event = one_event(inbox, proc)
    (value,) = event["exception"]["values"]
    assert (value["type"], value["mechanism"]["type"]) == ("KeyError", "structlog")
    assert "exception" not in event.get("extra", {})


@pytest.mark.parametrize("form", ["instance", "tuple"])
def test_exc_info_instance_or_tuple_outside_except(inbox: Inbox, pipes: Pipes,
                                                   form: str) -> None:
    proc = pipes.processor()
    log, _ = native(add_log_level, proc, format_exc_info, JSONRenderer())
    err = _caught(RuntimeError("later"))
    exc_info: Any = err if form == "instance" else (type(err), err, err.__traceback__)
    log.error("reported later", exc_info=exc_info)
    event = one_event(inbox, proc)
    (value,) = event["exception"]["values"]
    assert (value["type"], value["value"]) == ("RuntimeError", "later")
    assert value["stacktrace"]["frames"][-1]["function"] == "_raise"


def test_exception_chain_cause_first(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor()
    log, _ = native(add_log_level, proc, JSONRenderer())
    try:
        try:
            _raise(OSError("disk"))
        except OSError as low:
            raise RuntimeError("save failed") from low
    except RuntimeError:
        log.exception("save")
    values = one_event(inbox, proc)["exception"]["values"]
    assert [v["type"] for v in values] == ["OSError", "RuntimeError"]


def test_rendered_exception_outside_except_stays_in_extra(inbox: Inbox, pipes: Pipes) -> None:
    """After format_exc_info, only ``sys.exc_info()`` can give the object back: outside the
    except block (or for another exception) the rendered text is kept instead."""
    proc = pipes.processor()
    log, _ = native(add_log_level, format_exc_info, proc, JSONRenderer())
    err = _caught(ValueError("old"))
    log.error("outside", exc_info=err)
    try:
        _raise(LookupError("current"))
    except LookupError:
        log.error("another one is being handled", exc_info=err)
    assert proc.flush(10)
    events = by_message(inbox.wait_for_events(2))
    for message in ("outside", "another one is being handled"):
        event = events[message]
        assert "exception" not in event
        assert "ValueError: old" in event["extra"]["exception"]


# -- exactly one event ------------------------------------------------------------------------

_MESSAGE = "payment declined"


def _stream_handler(formatter: Optional[logging.Formatter] = None) -> logging.Handler:
    handler = logging.StreamHandler(io.StringIO())
    if formatter is not None:
        handler.setFormatter(formatter)
    return handler


_BRIDGES = {
    # name: (last processor of the chain, handlers in order: "fmt" formatter, "sentry")
    "formatter-then-sentry": (ProcessorFormatter.wrap_for_formatter, ("fmt", "sentry")),
    "sentry-then-formatter": (ProcessorFormatter.wrap_for_formatter, ("sentry", "fmt")),
    "render_to_log_kwargs": (render_to_log_kwargs, ("plain", "sentry")),
    "json-string": (JSONRenderer(), ("plain", "sentry")),
}


@pytest.mark.parametrize("wrapped", [False, True], ids=["direct", "wrapped"])
@pytest.mark.parametrize("bridge", list(_BRIDGES))
def test_stdlib_bridge_sends_exactly_one_event(inbox: Inbox, pipes: Pipes,
                                               stdlib_logger: logging.Logger,
                                               bridge: str, wrapped: bool) -> None:
    """``wrapped``: another processor calls ours (structlog's loop is further up the stack)."""
    proc = pipes.processor(tag_keys=["order_id"])
    last, order = _BRIDGES[bridge]
    for name in order:
        if name == "sentry":
            pipes.handler(stdlib_logger, level=logging.ERROR)
        else:
            formatter = ProcessorFormatter(processor=JSONRenderer()) if name == "fmt" else None
            pipes.attach(stdlib_logger, _stream_handler(formatter))
    front: Any = proc
    if wrapped:
        def front(logger: Any, method: str, event_dict: Any) -> Any:
            return proc(logger, method, event_dict)
    bridged(add_log_level, front, last)
    log = structlog.get_logger(stdlib_logger.name)

    log.info("step", n=1)  # one breadcrumb, not two
    log.error(_MESSAGE, order_id=42)
    inbox.wait_for_events(1)
    pipes.flush()
    (event,) = inbox.events
    assert event["tags"]["order_id"] == "42"  # the processor's event, not the handler's
    assert [c["message"] for c in event["breadcrumbs"]["values"]] == ["step"]

    # A later plain stdlib call with the very same string object is its own event.
    stdlib_logger.error(_MESSAGE)
    inbox.wait_for_events(2)
    pipes.flush()
    assert len(inbox.events) == 2
    second = inbox.events[1]
    assert "order_id" not in second.get("tags", {})
    assert "breadcrumbs" not in second


def test_dedupe_without_a_frame_claims_one_record() -> None:
    """Called outside structlog's loop the processor cannot tell when the call ends; the
    ``event`` string's identity then stands for one record only."""
    def record(msg: Any, name: str = "app") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), None)

    wrapped = {"event": _MESSAGE, "level": "error"}  # ProcessorFormatter.wrap_for_formatter
    dedupe.mark_captured(wrapped, logger_name="app")
    assert dedupe.is_captured(record(wrapped))
    assert dedupe.is_captured(record(wrapped))  # a second SentryHandler skips it too
    assert not dedupe.is_captured(record(_MESSAGE))

    kwargs = {"event": _MESSAGE, "level": "error"}  # render_to_log_kwargs pops "event"
    dedupe.mark_captured(kwargs, logger_name="app")
    assert not dedupe.is_captured(record(_MESSAGE, name="other"))
    assert dedupe.is_captured(record(kwargs.pop("event")))
    assert not dedupe.is_captured(record(_MESSAGE))  # a later call with the same constant

    dedupe.mark_captured({"event": _MESSAGE}, logger_name="app")
    assert not dedupe.is_captured(record(" ".join(["payment", "declined"])))  # equal, not same
    dedupe.release({})  # leave no claim behind for later tests on this thread


def test_a_call_the_processor_lets_pass_is_the_handlers(inbox: Inbox, pipes: Pipes,
                                                        stdlib_logger: logging.Logger) -> None:
    """An info call (below the processor's breadcrumb level) right after an error call runs
    in a fresh frame, likely at the old one's address: the handler must still get it."""
    proc = pipes.processor(breadcrumb_level=logging.WARNING)
    handler = pipes.handler(stdlib_logger)
    bridged(add_log_level, proc, JSONRenderer())
    log = structlog.get_logger(stdlib_logger.name)
    log.error("first")
    log.info("step")
    stdlib_logger.error("plain")
    inbox.wait_for_events(2)
    assert proc.flush(10) and handler.flush(10)
    events = by_message(inbox.events)
    assert len(inbox.events) == 2
    (crumb,) = events["plain"]["breadcrumbs"]["values"]
    assert json.loads(crumb["message"])["event"] == "step"


@pytest.mark.parametrize("sentry_first", [False, True], ids=["formatter-first", "sentry-first"])
def test_processor_in_processor_formatter_chains(inbox: Inbox, pipes: Pipes,
                                                 stdlib_logger: logging.Logger,
                                                 sentry_first: bool) -> None:
    """The "shared processors" recipe: the same processor in structlog's chain and in the
    formatter's ``foreign_pre_chain``, with a SentryHandler too: one event per call, whichever
    handler comes first."""
    proc = pipes.processor()
    shared = [add_log_level, proc]
    formatter = ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[proc, ProcessorFormatter.remove_processors_meta, JSONRenderer()],
    )
    if sentry_first:
        pipes.handler(stdlib_logger)
    pipes.attach(stdlib_logger, _stream_handler(formatter))
    if not sentry_first:
        pipes.handler(stdlib_logger)
    bridged(*shared, ProcessorFormatter.wrap_for_formatter)

    structlog.get_logger(stdlib_logger.name).error("from structlog")
    stdlib_logger.error("from %s", "stdlib")
    inbox.wait_for_events(2)
    pipes.flush()
    assert len(inbox.events) == 2
    texts = {e["logentry"].get("formatted", e["logentry"]["message"]): e for e in inbox.events}
    assert set(texts) == {"from structlog", "from stdlib"}
    assert texts["from stdlib"]["logger"][:50] == stdlib_logger.name[:50]  # (≤ 64 chars)


def test_equal_text_separate_calls_both_sent(inbox: Inbox, pipes: Pipes,
                                             stdlib_logger: logging.Logger) -> None:
    proc = pipes.processor()
    pipes.attach(stdlib_logger, _stream_handler(ProcessorFormatter(processor=JSONRenderer())))
    pipes.handler(stdlib_logger)
    bridged(add_log_level, proc, ProcessorFormatter.wrap_for_formatter)
    log = structlog.get_logger(stdlib_logger.name)
    for attempt in range(3):
        log.error("retry failed", attempt=attempt)
    inbox.wait_for_events(3)
    pipes.flush()
    assert sorted(e["extra"]["attempt"] for e in inbox.events) == [0, 1, 2]


# -- isolation ----------------------------------------------------------------------------------


def test_eight_threads_keep_their_own_values(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys=["worker"])
    log, _ = native(merge_contextvars, add_log_level, proc, JSONRenderer())
    start = threading.Barrier(8)
    buffered = threading.Barrier(8)
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            bind_contextvars(request_id=f"req-{i}")
            bound = log.bind(worker=i)
            start.wait(30)
            for step in range(3):
                bound.info("step", step=step)
            buffered.wait(30)  # every thread has its breadcrumbs before any event is sent
            bound.error("failed", detail=f"d-{i}")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert proc.flush(10)
    events = inbox.wait_for_events(8)
    seen = set()
    for event in events:
        i = int(event["tags"]["worker"])
        seen.add(i)
        assert event["extra"] == {"request_id": f"req-{i}", "detail": f"d-{i}"}
        crumbs = event["breadcrumbs"]["values"]
        assert [c["data"] for c in crumbs] == [
            {"request_id": f"req-{i}", "worker": i, "step": step} for step in range(3)
        ]
    assert seen == set(range(8))


def test_asyncio_tasks_keep_their_own_values(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor()
    log, _ = native(merge_contextvars, add_log_level, proc, JSONRenderer())

    async def request(name: str, gate: asyncio.Event) -> None:
        bind_contextvars(request=name)
        log.info("start", name=name)
        await gate.wait()
        log.error("fail", name=name)

    async def main() -> None:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(request(n, gate)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert proc.flush(10)
    for event in inbox.wait_for_events(3):
        name = event["extra"]["name"]
        assert event["extra"]["request"] == name
        assert [c["data"] for c in event["breadcrumbs"]["values"]] == [
            {"request": name, "name": name}
        ]


# -- one pipeline -------------------------------------------------------------------------------


def test_processor_shares_a_handlers_pipeline(inbox: Inbox, pipes: Pipes,
                                              stdlib_logger: logging.Logger) -> None:
    handler = pipes.handler(stdlib_logger)
    proc = pipes.processor(handler=handler)
    assert proc.client is handler.client
    log, _ = native(add_log_level, proc, JSONRenderer())

    stdlib_logger.info("stdlib step")
    log.error("from structlog")
    stdlib_logger.error("from stdlib")
    assert handler.flush(10)
    events = by_message(inbox.wait_for_events(2))
    assert set(events) == {"from structlog", "from stdlib"}
    # One breadcrumb buffer: the stdlib breadcrumb rides on the structlog event.
    crumbs = events["from structlog"]["breadcrumbs"]["values"]
    assert [c["message"] for c in crumbs] == ["stdlib step"]
    assert handler.client.stats()["delivered"] == 2
    proc.close()  # a shared client belongs to the handler
    assert handler.client.enabled


# -- robustness ---------------------------------------------------------------------------------


class _Hostile:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_hostile_values_still_deliver(inbox: Inbox, pipes: Pipes) -> None:
    proc = pipes.processor(tag_keys=["tag"])
    log, factory = native(add_log_level, proc)
    log.error(_Hostile(), value=_Hostile(), user_id=_Hostile(), tag=_Hostile(),
              fingerprint=[_Hostile()])
    event = one_event(inbox, proc)
    assert event["level"] == "error"
    assert "value" in event["extra"]
    assert factory.logger.calls[0].kwargs["tag"].__class__ is _Hostile


def test_never_raises_into_the_chain(inbox: Inbox, pipes: Pipes,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    proc = pipes.processor()

    def broken(capture: Any) -> Optional[str]:
        raise RuntimeError("queue on fire")

    monkeypatch.setattr(proc.client, "capture", broken)
    event_dict = {"event": "still logged", "level": "error"}
    assert proc(None, "error", event_dict) is event_dict
    assert event_dict == {"event": "still logged", "level": "error"}
    assert "internal error in SentryProcessor: RuntimeError: queue on fire" in (
        capsys.readouterr().err
    )


def test_ignores_own_loggers_and_worker_thread(inbox: Inbox, pipes: Pipes) -> None:
    log: Any = None

    def log_from_worker(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        log.error("logged on the worker thread")
        return event

    proc = pipes.processor(before_send=log_from_worker)
    log, _ = native(add_log_level, proc, JSONRenderer())
    log.error("requests noise", logger="urllib3.connectionpool")
    log.error("own noise", logger="sentry_log_handler.transport")
    log.error("real")
    inbox.wait_for_events(1)
    assert proc.flush(10)
    assert [e["logentry"]["message"] for e in inbox.events] == ["real"]


# -- a third-party server -----------------------------------------------------------------------


def test_processor_to_foxray(foxray: Any) -> None:
    proc = SentryProcessor(foxray.dsn, tag_keys=["feature"], event_id_key="sentry_id")
    try:
        log, factory = native(add_log_level, proc, JSONRenderer())
        try:
            _raise(ValueError("end to end"))
        except ValueError:
            log.exception("structlog to foxray", feature="e2e", user_id="u-9")
        assert proc.flush(10)
        stored = foxray.wait_for_event(rendered(factory)["sentry_id"])
    finally:
        proc.close()
    assert stored["exception"]["values"][-1]["type"] == "ValueError"
    assert stored["exception"]["values"][-1]["mechanism"]["type"] == "structlog"
