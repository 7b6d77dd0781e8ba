"""Tests of stacktrace.py: exception chains and groups, frames, source, in_app, locals, stacks.

Every interface produced here is also passed through Relay's normalizer: Relay silently drops
or trims what it does not like, so "Sentry accepted it" is only proven by an empty ``_meta``.
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import logging
import sys
import textwrap
import threading
import time
import types
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from relay_check import assert_relay_clean

from sentry_log_handler.stacktrace import (
    StackEntry,
    capture_stack,
    exception_interface,
    frames_from_stack,
    logging_frame_skip,
    stack_frames,
    threads_interface,
)

THIS_FILE = str(Path(__file__).resolve())
SOURCE_LINES = Path(THIS_FILE).read_text(encoding="utf-8").splitlines()
_ExceptionGroup: Any = getattr(builtins, "ExceptionGroup", None)  # 3.11+; tests skip below
needs_groups = pytest.mark.skipif(_ExceptionGroup is None, reason="ExceptionGroup is 3.11+")


def _event(**interfaces: Any) -> dict[str, Any]:
    event = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
    }
    event.update(interfaces)
    return event


def _relay_clean_exception(iface: dict[str, Any]) -> None:
    assert_relay_clean(_event(exception=iface))


def _caught(func: Any, *args: Any) -> BaseException:
    try:
        func(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("no exception raised")


def _line_of(marker: str) -> int:
    """1-based line number of the only line of this file that ends with ``# marker``."""
    hits = [i + 1 for i, line in enumerate(SOURCE_LINES) if line.endswith(f"# {marker}")]
    assert len(hits) == 1, hits
    return hits[0]


def _own_frames(value: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in value["stacktrace"]["frames"] if f["abs_path"] == THIS_FILE]


# ------------------------------------------------------------------------ chains


def _raise_from() -> None:
    try:
        raise KeyError("inner")
    except KeyError as exc:
        raise ValueError("outer") from exc


def _raise_during() -> None:
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError:
        raise RuntimeError("while handling")  # noqa: B904 (implicit context on purpose)


def _raise_from_none() -> None:
    try:
        raise KeyError("hidden")
    except KeyError:
        raise ValueError("clean") from None


def test_explicit_cause_comes_first() -> None:
    iface = exception_interface(_caught(_raise_from))
    values = iface["values"]
    assert [v["type"] for v in values] == ["KeyError", "ValueError"]
    assert values[0]["value"] == "'inner'"
    assert values[1]["value"] == "outer"
    for value in values:
        # A plain chain stays a plain list: no tree ids, mechanism on every value.
        assert value["mechanism"] == {"type": "logging", "handled": True}
        assert "module" not in value  # builtins
        assert value["stacktrace"]["frames"]
    _relay_clean_exception(iface)


def test_implicit_context_and_mechanism_options() -> None:
    iface = exception_interface(_caught(_raise_during), mechanism_type="excepthook", handled=False)
    assert [v["type"] for v in iface["values"]] == ["KeyError", "RuntimeError"]
    assert all(v["mechanism"] == {"type": "excepthook", "handled": False} for v in iface["values"])
    _relay_clean_exception(iface)


def test_suppressed_context_is_left_out() -> None:
    iface = exception_interface(_caught(_raise_from_none))
    assert [v["type"] for v in iface["values"]] == ["ValueError"]


def test_cycles_in_the_chain_end() -> None:
    first = ValueError("first")
    second = TypeError("second")
    first.__context__ = second
    second.__context__ = first
    iface = exception_interface(first)
    assert [v["type"] for v in iface["values"]] == ["TypeError", "ValueError"]

    selfish = RuntimeError("me")
    selfish.__cause__ = selfish
    assert len(exception_interface(selfish)["values"]) == 1
    _relay_clean_exception(iface)


def test_long_chain_is_capped_keeping_the_newest() -> None:
    newest: Optional[BaseException] = None
    for i in range(60):
        exc = ValueError(f"e{i}")
        exc.__cause__ = newest
        newest = exc
    assert newest is not None
    iface = exception_interface(newest, max_exceptions=25)
    values = iface["values"]
    assert len(values) == 25
    assert values[-1]["value"] == "e59"
    assert values[0]["value"] == "e35"


class _ModuleError(Exception):
    pass


class _BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_type_module_and_unprintable_value() -> None:
    iface = exception_interface(_BadStr())
    (value,) = iface["values"]
    assert value["type"] == "_BadStr"
    assert value["module"] == __name__
    assert value["value"] == "<exception str() failed>"
    _relay_clean_exception(iface)


def test_exception_never_raised_has_no_stacktrace() -> None:
    iface = exception_interface(_ModuleError("constructed only"))
    (value,) = iface["values"]
    assert "stacktrace" not in value
    assert value["value"] == "constructed only"
    _relay_clean_exception(iface)


def test_long_value_and_qualname_fit_relay() -> None:
    class Local(Exception):
        pass

    iface = exception_interface(Local("x" * 50_000))
    (value,) = iface["values"]
    assert value["type"].endswith("<locals>.Local")
    assert len(value["value"]) == 8192
    _relay_clean_exception(iface)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note is 3.11+")
def test_notes_are_appended_to_the_value() -> None:
    exc = ValueError("base")
    exc.add_note("hint one")  # type: ignore[attr-defined,unused-ignore]
    assert exception_interface(exc)["values"][0]["value"] == "base\nhint one"


# ------------------------------------------------------------------------ exception groups


def _raise(exc: BaseException) -> None:
    raise exc


def _nested_group() -> BaseException:
    inner = [_caught(_raise, TypeError("b")), _caught(_raise_from)]
    members = [
        _caught(_raise, ValueError("a")),
        _caught(_raise, _ExceptionGroup("inner", inner)),
    ]
    return _caught(_raise, _ExceptionGroup("outer", members))


def _check_tree(values: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Ids 0..n-1 from the last value backwards; parents exist and come later in the list."""
    mechanisms = [v["mechanism"] for v in values]
    assert [m["exception_id"] for m in mechanisms] == list(range(len(values)))[::-1]
    by_id = {m["exception_id"]: v for m, v in zip(mechanisms, values)}
    root = mechanisms[-1]
    assert "parent_id" not in root and "source" not in root
    for mechanism in mechanisms[:-1]:
        assert mechanism["parent_id"] < mechanism["exception_id"]
        assert mechanism["parent_id"] in by_id
        assert mechanism["source"]
    return by_id


@needs_groups
def test_nested_exception_groups() -> None:
    iface = exception_interface(_nested_group())
    values = iface["values"]
    by_id = _check_tree(values)
    assert by_id[0]["type"] == "ExceptionGroup"
    assert by_id[0]["value"] == "outer (2 sub-exceptions)"

    def describe(exc_id: int) -> tuple[str, str, Optional[int], bool]:
        mechanism = by_id[exc_id]["mechanism"]
        return (
            by_id[exc_id]["type"],
            mechanism.get("source", ""),
            mechanism.get("parent_id"),
            mechanism.get("is_exception_group", False),
        )

    # Depth first from the logged group: members in order, nested group's members, causes.
    assert [describe(i) for i in range(len(values))] == [
        ("ExceptionGroup", "", None, True),
        ("ValueError", "exceptions[0]", 0, False),
        ("ExceptionGroup", "exceptions[1]", 0, True),
        ("TypeError", "exceptions[0]", 2, False),
        ("ValueError", "exceptions[1]", 2, False),
        ("KeyError", "__cause__", 4, False),
    ]
    assert all(v["mechanism"]["type"] == "logging" for v in values)
    _relay_clean_exception(iface)


@needs_groups
def test_group_inside_a_chain_switches_to_tree_form() -> None:
    def reraise() -> None:
        try:
            _raise(_ExceptionGroup("grp", [ValueError("x")]))
        except Exception as exc:
            raise RuntimeError("wrapped") from exc

    iface = exception_interface(_caught(reraise))
    by_id = _check_tree(iface["values"])
    assert by_id[0]["type"] == "RuntimeError"
    assert by_id[1]["mechanism"]["source"] == "__cause__"
    assert by_id[1]["mechanism"]["is_exception_group"] is True
    assert by_id[2]["mechanism"]["source"] == "exceptions[0]"
    _relay_clean_exception(iface)


@needs_groups
def test_huge_group_is_capped() -> None:
    group = _ExceptionGroup("many", [ValueError(str(i)) for i in range(500)])
    iface = exception_interface(group, max_exceptions=10)
    assert len(iface["values"]) == 10
    _check_tree(iface["values"])
    _relay_clean_exception(iface)


# ------------------------------------------------------------------------ frames and source


def _level3() -> None:
    raise LookupError("deep")  # L3


def _level2() -> None:
    _level3()  # L2


def _level1() -> None:
    _level2()  # L1


class _Thing:
    def method(self) -> None:
        _level1()  # METHOD


def test_frames_order_lines_and_source_context() -> None:
    try:
        _Thing().method()  # TOP
    except LookupError as exc:
        caught = exc
    # The frame that caught it has moved on by now; tb_lineno still says where the call was.
    moved_on = True
    assert moved_on

    iface = exception_interface(caught)
    frames = iface["values"][0]["stacktrace"]["frames"]
    assert [f["lineno"] for f in frames] == [
        _line_of("TOP"),
        _line_of("METHOD"),
        _line_of("L1"),
        _line_of("L2"),
        _line_of("L3"),
    ]
    functions = [f["function"] for f in frames]
    if sys.version_info >= (3, 11):
        assert functions[:2] == ["test_frames_order_lines_and_source_context", "_Thing.method"]
    else:
        assert functions[1] == "method"
    assert functions[2:] == ["_level1", "_level2", "_level3"]

    last = frames[-1]
    line = _line_of("L3")
    assert last["context_line"] == SOURCE_LINES[line - 1]
    assert last["pre_context"] == SOURCE_LINES[line - 6 : line - 1]
    assert last["post_context"] == SOURCE_LINES[line : line + 5]
    for frame in frames:
        assert frame["abs_path"] == THIS_FILE
        assert frame["module"] == __name__
        assert frame["in_app"] is True
        # Relative like the importer sees it, e.g. "test_stacktrace.py" or "tests/...".
        assert not Path(frame["filename"]).is_absolute()
        assert THIS_FILE.endswith(frame["filename"])
        assert "vars" not in frame
    _relay_clean_exception(iface)


def test_context_lines_option() -> None:
    exc = _caught(_level3)
    frame = exception_interface(exc, context_lines=1)["values"][0]["stacktrace"]["frames"][-1]
    assert len(frame["pre_context"]) == 1 and len(frame["post_context"]) == 1
    frame = exception_interface(exc, context_lines=-1)["values"][0]["stacktrace"]["frames"][-1]
    assert "context_line" not in frame and frame["lineno"] == _line_of("L3")


def test_long_lines_are_cut_around_the_column(tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        def fail():
            raise ValueError("boom")

        def caller():
            return "a" * 1 + "{pad}" + str(fail()) + "{pad}"
        """
    ).format(pad="p" * 600)
    module = _load_module(tmp_path, "long_line_mod", source)
    iface = exception_interface(_caught(module.caller))
    frame = iface["values"][0]["stacktrace"]["frames"][-2]
    assert frame["function"] == "caller"
    assert len(frame["context_line"]) <= 200
    assert frame["context_line"].endswith("...")
    if sys.version_info >= (3, 11):  # column known: the window is around the failing call
        assert "fail()" in frame["context_line"]
        assert frame["context_line"].startswith("...")
    assert frame["filename"] == "long_line_mod.py"
    _relay_clean_exception(iface)


def _load_module(directory: Path, name: str, source: str) -> types.ModuleType:
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deep_recursion_keeps_both_ends() -> None:
    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("bottom")
        recurse(n - 1)

    iface = exception_interface(_caught(recurse, 100), max_frames=10)
    frames = iface["values"][0]["stacktrace"]["frames"]
    assert len(frames) == 10
    assert frames[0]["function"] == "_caught"
    assert frames[-1]["context_line"].strip() == 'raise RecursionError("bottom")'
    _relay_clean_exception(iface)


# ------------------------------------------------------------------------ in_app


def test_stdlib_frames_are_not_in_app() -> None:
    iface = exception_interface(_caught(json.loads, "{not json"))
    frames = iface["values"][-1]["stacktrace"]["frames"]
    stdlib = [f for f in frames if f["module"].startswith("json")]
    assert stdlib and all(f["in_app"] is False for f in stdlib)
    assert any(f["filename"] == "json/decoder.py" for f in stdlib)
    assert all(f["in_app"] is True for f in _own_frames(iface["values"][-1]))
    _relay_clean_exception(iface)


def _bad_url() -> BaseException:
    return _caught(requests.get, "http://[invalid")  # raises inside requests, no network


def test_site_packages_frames_are_not_in_app() -> None:
    iface = exception_interface(_bad_url())
    top = iface["values"][-1]
    assert top["type"] == "InvalidURL" and top["module"] == "requests.exceptions"
    library = [f for f in top["stacktrace"]["frames"] if f["module"].startswith("requests")]
    assert library and all(f["in_app"] is False for f in library)
    assert any(f["filename"] == "requests/api.py" for f in library)
    assert all(f["in_app"] is True for f in _own_frames(top))
    _relay_clean_exception(iface)


def test_in_app_include_and_exclude_override_the_path_rule() -> None:
    exc = _bad_url()

    def flags(**options: Any) -> dict[str, set[bool]]:
        frames = exception_interface(exc, **options)["values"][-1]["stacktrace"]["frames"]
        out: dict[str, set[bool]] = {}
        for frame in frames:
            out.setdefault(frame["module"].split(".")[0], set()).add(frame["in_app"])
        return out

    assert flags() == {"requests": {False}, __name__.split(".")[0]: {True}}
    assert flags(in_app_include=["requests"])["requests"] == {True}
    assert flags(in_app_include=["requests.api"])["requests"] == {True, False}
    assert flags(in_app_include=["req"])["requests"] == {False}  # dotted prefixes only
    assert flags(in_app_exclude=[__name__])[__name__.split(".")[0]] == {False}
    # include wins over exclude
    assert flags(in_app_include=["requests"], in_app_exclude=["requests"])["requests"] == {True}
    # a lone string is one prefix (not its letters); a trailing dot is tolerated
    assert flags(in_app_include="requests.")["requests"] == {True}
    assert flags(in_app_exclude=__name__)[__name__.split(".")[0]] == {False}


# ------------------------------------------------------------------------ locals


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _with_locals(count: int, text: str) -> None:
    ratio = 0.5
    nothing = None
    bad = _BadRepr()
    config = {"password": "hunter2", "depth": {"deeper": [1, 2, 3]}}
    raise ValueError(len((count, text, ratio, nothing, bad, config)))


def test_locals_off_by_default_on_when_asked() -> None:
    exc = _caught(_with_locals, 7, "seven")
    assert all(
        "vars" not in f for f in exception_interface(exc)["values"][0]["stacktrace"]["frames"]
    )

    iface = exception_interface(exc, include_locals=True)
    frame = iface["values"][0]["stacktrace"]["frames"][-1]
    assert frame["vars"] == {
        "count": 7,
        "text": "'seven'",
        "ratio": 0.5,
        "nothing": None,
        "bad": "<unrepresentable _BadRepr>",
        # containers stay containers, so a key-based scrub later still finds "password"
        "config": {"password": "'hunter2'", "depth": {"deeper": [1, 2, 3]}},
    }
    _relay_clean_exception(iface)


def _huge_locals() -> None:
    scope: dict[str, Any] = {f"v{i:03d}": "x" * 100_000 for i in range(200)}
    scope["big_list"] = list(range(100_000))
    scope["nan"] = float("nan")
    scope["huge_int"] = 10**40
    exec("raise ValueError('huge')", {}, scope)  # the exec frame's locals are `scope`


def test_huge_locals_are_bounded() -> None:
    iface = exception_interface(_caught(_huge_locals), include_locals=True)
    frame = iface["values"][0]["stacktrace"]["frames"][-1]
    variables = frame["vars"]
    assert 0 < len(variables) <= 50
    assert all(len(v) <= 1024 for v in variables.values() if isinstance(v, str))
    assert len(json.dumps(variables)) < 2500
    _relay_clean_exception(iface)


def test_odd_values_stay_json_safe() -> None:
    def odd() -> None:
        nan = float("nan")
        huge = 10**40
        blob = b"\x00\xff" * 5000
        nested = [[[[["deep"]]]]]
        raise ValueError(len((nan, huge, blob, nested)))

    iface = exception_interface(_caught(odd), include_locals=True)
    variables = iface["values"][0]["stacktrace"]["frames"][-1]["vars"]
    assert variables["nan"] == "nan"
    assert variables["huge"] == str(10**40)
    assert variables["blob"].startswith("b'\\x00\\xff")
    assert variables["nested"] == [[["[['deep']]"]]]  # past depth 3: repr
    json.dumps(iface, allow_nan=False)
    _relay_clean_exception(iface)


# ------------------------------------------------------------------------ stacks


def _capture_inner(with_locals: bool) -> list[StackEntry]:
    marker = "inner-local"
    assert marker
    return capture_stack(with_locals=with_locals)  # CAPTURE


def _capture_outer(with_locals: bool = False) -> list[StackEntry]:
    entries = _capture_inner(with_locals)  # OUTER
    # This frame moves on before the entries are turned into frames.
    for _ in range(3):
        pass
    return entries


def test_capture_stack_keeps_lines_of_capture_time() -> None:
    assert stack_frames is frames_from_stack  # the name in the team's interface notes
    entries = _capture_outer()
    assert isinstance(entries[-1], StackEntry)
    frames = frames_from_stack(entries)
    assert [f["function"] for f in frames[-2:]] == ["_capture_outer", "_capture_inner"]
    assert frames[-1]["lineno"] == _line_of("CAPTURE")
    assert frames[-2]["lineno"] == _line_of("OUTER")
    assert frames[-1]["context_line"] == SOURCE_LINES[_line_of("CAPTURE") - 1]
    assert frames[-3]["function"] == "test_capture_stack_keeps_lines_of_capture_time"
    assert all("vars" not in f for f in frames)


def test_capture_stack_limit_skip_and_locals() -> None:
    entries = _capture_outer(with_locals=True)
    assert entries[-1].f_locals is not None and entries[-1].f_locals["marker"] == "inner-local"
    frames = frames_from_stack(entries, include_locals=True)
    assert frames[-1]["vars"]["marker"] == "'inner-local'"
    assert "vars" not in frames_from_stack(entries)[-1]  # snapshot kept, not sent unless asked

    here = sys._getframe()
    short = capture_stack(here, limit=2)
    assert len(short) == 2 and short[-1].code is here.f_code

    skipped = capture_stack(here, skip=lambda f: f.f_code is here.f_code)
    assert skipped[-1].code is not here.f_code


def test_threads_interface_shape_and_relay() -> None:
    entries = _capture_outer(with_locals=True)
    iface = threads_interface(
        entries,
        thread_id=threading.get_ident(),
        thread_name=threading.current_thread().name,
        include_locals=True,
        in_app_exclude=["_pytest", "pluggy"],
    )
    (thread,) = iface["values"]
    assert thread["id"] == threading.get_ident()
    assert thread["name"] == threading.current_thread().name
    assert thread["current"] is True and thread["crashed"] is False
    frames = thread["stacktrace"]["frames"]
    assert frames[-1]["function"] == "_capture_inner"
    assert all(not f["in_app"] for f in frames if f["module"].startswith("_pytest"))
    assert_relay_clean(_event(threads=iface))


class _StackHandler(logging.Handler):
    """Does what the real handler does in emit: capture the stack minus logging's frames."""

    def __init__(self) -> None:
        super().__init__()
        self.stacks: list[list[StackEntry]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.stack_info:
            # Start above emit itself: the real handler's emit lives in sentry_log_handler,
            # which the predicate skips; this one lives in a test module, which it keeps.
            self.stacks.append(capture_stack(sys._getframe(1), skip=logging_frame_skip))


def test_stack_info_through_logging_ends_at_the_caller() -> None:
    logger = logging.getLogger("tests.stacktrace.stack_info")
    handler = _StackHandler()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("with a stack", stack_info=True)  # LOGCALL
        logging.LoggerAdapter(logger, {}).error("adapted", stack_info=True)  # ADAPTER
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    for stack, marker in zip(handler.stacks, ["LOGCALL", "ADAPTER"]):
        frames = frames_from_stack(stack)
        assert frames[-1]["function"] == "test_stack_info_through_logging_ends_at_the_caller"
        assert frames[-1]["lineno"] == _line_of(marker)
        assert frames[-1]["in_app"] is True
        assert not any(f["module"].partition(".")[0] == "logging" for f in frames)
        iface = threads_interface(stack, thread_id=1, thread_name="MainThread")
        assert_relay_clean(_event(threads=iface))
    assert len(handler.stacks) == 2


def test_logging_frame_skip_by_module() -> None:
    assert logging_frame_skip(sys._getframe()) is False

    def frame_in(module_name: str) -> types.FrameType:
        namespace: dict[str, Any] = {"__name__": module_name, "sys": sys}
        exec("frame = sys._getframe()", namespace)
        frame: types.FrameType = namespace["frame"]
        return frame

    assert logging_frame_skip(frame_in("logging")) is True
    assert logging_frame_skip(frame_in("logging.handlers")) is True
    assert logging_frame_skip(frame_in("sentry_log_handler.handler")) is True
    assert logging_frame_skip(frame_in("logging_extras")) is False
    assert logging_frame_skip(frame_in("sentry_log_handler_tests")) is False
