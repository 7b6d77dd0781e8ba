"""serialize: hostile values, scrubbing, Relay limits and size trimming.

Relay's own normalizer is the oracle for every limit: an event must come back from it with no
errors and an empty ``_meta`` (nothing trimmed or rejected by the server).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import pathlib
import time
import uuid
from collections import OrderedDict, deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_check import assert_relay_clean

from sentry_log_handler import limits
from sentry_log_handler.fields import (
    clean_environment,
    clean_level,
    clean_release,
    clean_tag_key,
    clean_tag_value,
)
from sentry_log_handler.limits import FILTERED
from sentry_log_handler.normalize import encode_event
from sentry_log_handler.scrub import scrub
from sentry_log_handler.serialize import dumps, safe_value, truncate


def base_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": uuid.uuid4().hex,
        "timestamp": time.time(),
        "platform": "python",
        "level": "error",
        "logger": "t",
        "logentry": {"message": "m %s", "params": ["x"], "formatted": "m x"},
    }
    event.update(fields)
    return event


def encoded(event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """encode_event, then check the bytes are valid JSON and Relay keeps them unchanged."""
    data = encode_event(event, **kwargs)
    assert len(data) <= kwargs.get("max_bytes", limits.MAX_EVENT_BYTES)
    decoded: dict[str, Any] = json.loads(data.decode("utf-8"))
    assert_relay_clean(decoded)
    return decoded


def is_json_safe(value: Any) -> bool:
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(is_json_safe(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_json_safe(v) for k, v in value.items())
    return False


# --- hostile values --------------------------------------------------------------------------


class RaisingRepr:
    # Disarmed while hypothesis prints a falsifying example (it calls repr too).
    armed = True

    def __repr__(self) -> str:
        if RaisingRepr.armed:
            raise RuntimeError("repr exploded")
        return "RaisingRepr()"

    def __str__(self) -> str:
        if RaisingRepr.armed:
            raise RuntimeError("str exploded")
        return "RaisingRepr()"


class ReprReturnsInt:
    def __repr__(self) -> Any:
        return 5


class ExitingRepr:
    def __repr__(self) -> str:
        raise SystemExit(3)


class HostileDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("items")

    def __iter__(self) -> Any:
        raise RuntimeError("iter")

    def __len__(self) -> int:
        raise RuntimeError("len")


class HostileList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("iter")

    def __len__(self) -> int:
        raise RuntimeError("len")


class WeirdStr(str):
    def __str__(self) -> str:
        raise RuntimeError("str")


class WeirdInt(int):
    def __repr__(self) -> str:
        raise RuntimeError("repr")


class WeirdFloat(float):
    def __repr__(self) -> str:
        raise RuntimeError("repr")


class IterableObject:
    """Has __iter__, but it is not a container: safe_value must not call it."""

    def __iter__(self) -> Any:
        raise AssertionError("__iter__ must not be called")

    def __repr__(self) -> str:
        return "<IterableObject>"


class Color(enum.Enum):
    RED = "r"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int
    y: int


_NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        (None, None),
        (True, True),
        (3, 3),
        (1.5, 1.5),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (2**63 - 1, 2**63 - 1),
        (-(2**63), -(2**63)),
        (2**63, str(2**63)),
        (2**64, str(2**64)),
        (-(2**70), str(-(2**70))),
        (b"caf\xc3\xa9", "café"),
        (b"\xff", "\ufffd"),
        (bytearray(b"ab"), "ab"),
        (memoryview(b"xy"), "xy"),
        (_NOW, "2024-05-06T07:08:09+00:00"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        (datetime.time(3, 4), "03:04:00"),
        (datetime.timedelta(seconds=90), "0:01:30"),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (pathlib.PurePosixPath("/a/b"), "/a/b"),
        (Color.RED, "Color.RED"),
        (Level.HIGH, "Level.HIGH"),
        ((1, 2), [1, 2]),
        (frozenset({1}), [1]),
        ({2}, [2]),
        (deque([1, 2]), [1, 2]),
        (OrderedDict(a=1), {"a": 1}),
        ({1: "a", None: "b", (1, 2): "c"}, {"1": "a", "None": "b", "(1, 2)": "c"}),
        (RaisingRepr(), "<unrepresentable RaisingRepr>"),
        (ReprReturnsInt(), "<unrepresentable ReprReturnsInt>"),
        (ExitingRepr(), "<unrepresentable ExitingRepr>"),
        (HostileDict(a=1), {"a": 1}),
        (HostileList([1, 2]), [1, 2]),
        (WeirdStr("w"), "w"),
        (WeirdInt(7), 7),
        (WeirdFloat(2.5), 2.5),
        (IterableObject(), "<IterableObject>"),
        (Point(1, 2), "Point(x=1, y=2)"),
        ("a\ud800b", "a?b"),
        ({"k\udc00": 1}, {"k?": 1}),
        (complex(1, 2), "(1+2j)"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_safe_value_hostile_inputs(value: Any, expected: Any) -> None:
    result = safe_value(value)
    assert result == expected
    assert type(result) is type(expected)
    assert is_json_safe(result)
    dumps(result)


def test_safe_value_int_too_large_to_print() -> None:
    result = safe_value(10**5000)
    assert isinstance(result, str)
    assert result.startswith("<int of") or result.isdigit() or result.endswith("...")


def test_safe_value_cycles() -> None:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    lst: list[Any] = [1]
    lst.append(lst)
    assert safe_value(d) == {"a": 1, "self": "<cycle>"}
    assert safe_value(lst) == [1, "<cycle>"]


def test_shared_references_are_not_cycles_and_not_exponential() -> None:
    shared = {"x": 1}
    assert safe_value([shared, shared]) == [{"x": 1}, {"x": 1}]
    node: Any = "leaf"
    for _ in range(60):  # 2**60 paths if expanded naively
        node = [node, node]
    result = safe_value(node, max_depth=100)
    assert is_json_safe(result)
    assert len(dumps(result)) < 1_000_000


def test_huge_strings_and_containers_are_truncated_with_markers() -> None:
    s = safe_value("x" * 100_000, max_string=100)
    assert len(s) == 100 and s.endswith("...")
    lst = safe_value(list(range(5000)), max_items=10)
    assert lst[:10] == list(range(10)) and lst[10] == "<4990 more items>"
    d = safe_value({str(i): i for i in range(50)}, max_items=5)
    assert len(d) == 6 and d["<truncated>"] == "<45 more items>"


def test_byte_budget_bounds_result_size() -> None:
    value = {"a": ["y" * 1000] * 100, "b": {"c": "z" * 50_000}}
    result = safe_value(value, max_bytes=2048)
    assert len(dumps(result)) <= 2048
    assert "<size limit>" in dumps(result).decode()


def test_nesting_beyond_depth_becomes_string() -> None:
    value: Any = 1
    for _ in range(10):
        value = {"a": value}
    result = safe_value(value, max_depth=3)
    assert isinstance(result["a"]["a"]["a"], str)
    assert result["a"]["a"]["a"].startswith('{"a":')


def test_safe_value_does_not_raise_on_recursion_heavy_input() -> None:
    value: Any = []
    for _ in range(5000):
        value = [value]
    assert is_json_safe(safe_value(value, max_depth=10_000))


def test_truncate() -> None:
    assert truncate("abc", 3) == "abc"
    assert truncate("abcdef", 5) == "ab..."
    assert truncate("abcdef", 2) == "ab"


def test_dumps_is_compact_and_utf8() -> None:
    assert dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()
    with pytest.raises(ValueError):
        dumps(float("nan"))


# --- scrubbing -------------------------------------------------------------------------------

SECRET_KEYS = [
    "password",
    "db_password",
    "userPassword",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "csrftoken",
    "X-CSRFToken",
    "api_key",
    "apikey",
    "X-Api-Key",
    "access_key",
    "private_key",
    "Authorization",
    "auth",
    "cookie",
    "Set-Cookie",
    "session",
    "sessionid",
    "session_id",
    "credentials",
]
KEPT_KEYS = ["request_id", "user_agent", "order_id", "author", "status", "path", "sessions_count"]
PII_KEYS = ["ip_address", "REMOTE_ADDR", "X-Forwarded-For", "X-Real-IP", "email"]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_scrub_filters_secrets(key: str) -> None:
    assert scrub({key: "v"}) == {key: FILTERED}
    assert scrub({key: "v"}, send_default_pii=True) == {key: FILTERED}


@pytest.mark.parametrize("key", KEPT_KEYS)
def test_scrub_keeps_ordinary_keys(key: str) -> None:
    assert scrub({key: "v"}) == {key: "v"}


@pytest.mark.parametrize("key", PII_KEYS)
def test_scrub_pii_only_without_send_default_pii(key: str) -> None:
    assert scrub({key: "1.2.3.4"}) == {key: FILTERED}
    assert scrub({key: "1.2.3.4"}, send_default_pii=True) == {key: "1.2.3.4"}


def test_scrub_nested_and_in_lists_and_bearer_values() -> None:
    value = {
        "outer": {"inner": [{"token": "t", "ok": 1}], "password": {"nested": "x"}},
        "header": "Bearer abcdefghijkl",
    }
    assert scrub(value) == {
        "outer": {"inner": [{"token": FILTERED, "ok": 1}], "password": FILTERED},
        "header": FILTERED,
    }


def test_scrub_custom_denylist_and_hostile_input() -> None:
    assert scrub({"pin": 1, "password": 2}, denylist=frozenset({"pin"})) == {
        "pin": FILTERED,
        "password": 2,
    }
    d: dict[str, Any] = {}
    d["d"] = d
    assert scrub(d) == {"d": "<cycle>"}


def test_encode_event_scrubs_every_bag() -> None:
    frame = {"function": "f", "lineno": 1, "vars": {"api_key": "k", "order_id": 7}}
    event = base_event(
        extra={"password": "p", "request_id": "r", "nested": {"list": [{"Authorization": "a"}]}},
        breadcrumbs={"values": [{"message": "b", "data": {"cookie": "c", "user_agent": "u"}}]},
        exception={
            "values": [{"type": "E", "value": "v", "stacktrace": {"frames": [frame]}}],
        },
        threads={"values": [{"id": 1, "stacktrace": {"frames": [frame]}}]},
        contexts={
            "app": {"session_id": "s", "name": "n"},
            "os": {"name": "Linux", "version": "6"},
        },
        user={"id": "u1", "ip_address": "10.0.0.1"},
    )
    out = encoded(event)
    assert out["extra"]["password"] == FILTERED
    assert out["extra"]["request_id"] == "r"
    assert out["extra"]["nested"]["list"][0]["Authorization"] == FILTERED
    assert out["breadcrumbs"]["values"][0]["data"] == {"cookie": FILTERED, "user_agent": "u"}
    for part in ("exception", "threads"):
        frame_vars = out[part]["values"][0]["stacktrace"]["frames"][0]["vars"]
        assert frame_vars == {"api_key": FILTERED, "order_id": 7}
    assert out["contexts"]["app"] == {"session_id": FILTERED, "name": "n"}
    assert out["contexts"]["os"] == {"name": "Linux", "version": "6"}
    assert out["user"] == {"id": "u1"}


def test_encode_event_keeps_ip_with_send_default_pii() -> None:
    event = base_event(user={"id": "u1", "ip_address": "10.0.0.1"}, extra={"remote_addr": "x"})
    out = encoded(event, send_default_pii=True)
    assert out["user"]["ip_address"] == "10.0.0.1"
    assert out["extra"]["remote_addr"] == "x"
    out = encoded(event)
    assert out["extra"]["remote_addr"] == FILTERED


# --- single-field cleaners -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("valid.key:a-b_C9", "valid.key:a-b_C9"),
        ("a b", "a_b"),
        ("a/b@c", "a_b_c"),
        ("é", None),
        ("", None),
        (5, "5"),
        ("k" * 300, "k" * 200),
    ],
)
def test_clean_tag_key(key: Any, expected: Any) -> None:
    assert clean_tag_key(key) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v", "v"),
        ("a\nb", "a b"),
        ("", "<empty>"),
        ("  ", "<empty>"),
        (3, "3"),
        (RaisingRepr(), "<unrepresentable RaisingRepr>"),
        ("v" * 300, "v" * 197 + "..."),
    ],
)
def test_clean_tag_value(value: Any, expected: str) -> None:
    assert clean_tag_value(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("production", "production"),
        ("a/b", "a-b"),
        (" staging\n", "staging"),
        ("none", None),
        ("None", None),
        (".", None),
        ("", None),
        ("e" * 100, "e" * 64),
    ],
)
def test_clean_environment(value: Any, expected: Any) -> None:
    assert clean_environment(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("myapp@1.0.0", "myapp@1.0.0"),
        ("a/b", "a-b"),
        ("latest", None),
        ("Latest", None),
        ("..", None),
        (" ", None),
        ("r" * 200, "r" * 200),
        ("r" * 201, None),
    ],
)
def test_clean_release(value: Any, expected: Any) -> None:
    assert clean_release(value) == expected


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("CRITICAL", "fatal"),
        ("warn", "warning"),
        ("WARNING", "warning"),
        (40, "error"),
        (25, "info"),
        (5, "debug"),
        ("custom", "error"),
        (None, "error"),
    ],
)
def test_clean_level(level: Any, expected: str) -> None:
    assert clean_level(level) == expected


# --- Relay limits: at and over each limit, the result is Relay-clean -------------------------


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _frames(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"function": f"f{i}", "filename": "a.py", "lineno": i, **fields} for i in range(n)]


def _exc(frames: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": frames}, **fields}]}


LIMIT_CASES: list[tuple[str, Any]] = []
for _n in (1, 64, 65, 1000):
    LIMIT_CASES.append((f"logger{_n}", lambda n=_n: base_event(logger="l" * n)))
for _n in (200, 201, 300):
    LIMIT_CASES += [
        (f"server_name{_n}", lambda n=_n: base_event(server_name="s" * n)),
        (f"transaction{_n}", lambda n=_n: base_event(transaction="t" * n)),
        (f"tag_key{_n}", lambda n=_n: base_event(tags={"k" * n: "v"})),
        (f"tag_value{_n}", lambda n=_n: base_event(tags={"k": "v" * n})),
        (f"release{_n}", lambda n=_n: base_event(release="r" * n)),
    ]
for _n in (8192, 8193, 9000, 100_000):
    LIMIT_CASES += [
        (
            f"message{_n}",
            lambda n=_n: base_event(logentry={"message": "m" * n, "formatted": "f" * n}),
        ),
        (f"exc_value{_n}", lambda n=_n: base_event(exception=_exc(_frames(1), value="v" * n))),
        (
            f"crumb_message{_n}",
            lambda n=_n: base_event(breadcrumbs={"values": [{"message": "b" * n}]}),
        ),
    ]
for _n in (16384, 16385, 100_000):
    LIMIT_CASES += [
        (f"extra_str{_n}", lambda n=_n: base_event(extra={"a": "x" * n})),
        (f"extra_str_multibyte{_n}", lambda n=_n: base_event(extra={"a": "é" * n})),
        (f"extra_list{_n}", lambda n=_n: base_event(extra={"a": list(range(n))})),
        (f"extra_dict{_n}", lambda n=_n: base_event(extra={"a": {str(i): 1 for i in range(n)}})),
        (f"extra_nulls{_n}", lambda n=_n: base_event(extra={"a": [None] * n})),
    ]
for _n in (2048, 2049, 10_000):
    LIMIT_CASES += [
        (f"vars_str{_n}", lambda n=_n: base_event(exception=_exc(_frames(1, vars={"a": "x" * n})))),
        (
            f"vars_many{_n}",
            lambda n=_n: base_event(
                exception=_exc(_frames(1, vars={f"v{i}": i for i in range(n)}))
            ),
        ),
        (
            f"crumb_data{_n}",
            lambda n=_n: base_event(
                breadcrumbs={"values": [{"data": {f"a{i}": "x" * 300 for i in range(n // 300)}}]}
            ),
        ),
        (
            f"params{_n}",
            lambda n=_n: base_event(logentry={"message": "x", "params": ["p" * n] * 3}),
        ),
    ]
for _n in (250, 251, 1000):
    LIMIT_CASES += [
        (f"frames{_n}", lambda n=_n: base_event(exception=_exc(_frames(n)))),
        (
            f"thread_frames{_n}",
            lambda n=_n: base_event(
                threads={"values": [{"id": 1, "stacktrace": {"frames": _frames(n)}}]}
            ),
        ),
    ]
LIMIT_CASES += [
    ("environment64", lambda: base_event(environment="e" * 64)),
    ("environment65", lambda: base_event(environment="e" * 65)),
    ("environment_bad", lambda: base_event(environment="a/b\n")),
    ("environment_none", lambda: base_event(environment="none")),
    ("release_latest", lambda: base_event(release="latest")),
    ("dist_long", lambda: base_event(dist="d" * 65)),
    ("logger_newline", lambda: base_event(logger="a\nb")),
    ("level_warn", lambda: base_event(level="warn")),
    ("level_number", lambda: base_event(level=50)),
    ("tags_bad", lambda: base_event(tags={"a/b": "x\ny", "": "v", "k": "", "n": None})),
    ("fingerprint", lambda: base_event(fingerprint=["{{ default }}", 1, ["nested"], None])),
    ("user_fields", lambda: base_event(user={"id": "i" * 500, "email": "e" * 500, "x": {1: 2}})),
    ("user_bad_ip", lambda: base_event(user={"ip_address": "nope"})),
    ("user_bad_ip_pii", lambda: base_event(user={"ip_address": "nope"})),
    ("contexts_non_dict", lambda: base_event(contexts={"app": "str", "x": [1]})),
    ("contexts_big", lambda: base_event(contexts={"app": {f"k{i}": "v" * 900 for i in range(20)}})),
    ("contexts_deep", lambda: base_event(contexts={"app": {"a": _nest(20)}})),
    ("os_big", lambda: base_event(contexts={"os": {"name": "x" * 9000}})),
    ("runtime_big", lambda: base_event(contexts={"runtime": {"name": "y", "version": "v" * 9000}})),
    ("trace_bad", lambda: base_event(contexts={"trace": {"trace_id": "xyz", "span_id": "b"}})),
    (
        "trace_ok",
        lambda: base_event(contexts={"trace": {"trace_id": "a" * 32, "span_id": "b" * 16}}),
    ),
    ("extra_deep", lambda: base_event(extra={"a": _nest(20)})),
    ("extra_total", lambda: base_event(extra={f"k{i}": "x" * 16000 for i in range(40)})),
    ("extra_unicode_total", lambda: base_event(extra={f"k{i}": "日" * 16000 for i in range(40)})),
    ("extra_not_dict", lambda: base_event(extra=["a"])),
    ("unknown_top_level", lambda: base_event(foo=1, bar={"x": 1})),
    (
        "crumb_bad",
        lambda: base_event(breadcrumbs=[{"level": "warn", "timestamp": "no", "data": 1}]),
    ),
    ("crumb_fields", lambda: base_event(breadcrumbs=[{"type": "t" * 200, "category": "c" * 200}])),
    ("crumb_deep", lambda: base_event(breadcrumbs=[{"data": {"a": _nest(20)}}])),
    ("crumbs_many", lambda: base_event(breadcrumbs=[{"message": str(i)} for i in range(1000)])),
    ("exc_empty", lambda: base_event(exception={"values": [{}]})),
    ("exc_empty_frames", lambda: base_event(exception=_exc([]))),
    (
        "exc_long_type",
        lambda: base_event(exception=_exc(_frames(1), type="T" * 300, module="m" * 300)),
    ),
    ("frame_bad_fields", lambda: base_event(exception=_exc(_frames(1, lineno=-1, in_app="yes")))),
    ("frame_function", lambda: base_event(exception=_exc([{"function": "f" * 1000}]))),
    ("frame_vars_deep", lambda: base_event(exception=_exc(_frames(1, vars={"a": _nest(20)})))),
    (
        "mechanism",
        lambda: base_event(
            exception=_exc(
                _frames(1),
                mechanism={"type": "t" * 300, "source": "s" * 300, "data": {"a": "x" * 5000}},
            )
        ),
    ),
    ("vars_huge_floats", lambda: base_event(exception=_exc(_frames(1, vars={"f": [1e300] * 50})))),
    ("extra_tiny_floats", lambda: base_event(extra={"f": [-1.5e-300] * 500, "g": [2.5e20] * 900})),
    (
        "extra_extreme_floats",
        lambda: base_event(extra={"f": [5e-324, 1.7976931348623157e308] * 99}),
    ),
    (
        "vars_long_floats",
        lambda: base_event(exception=_exc(_frames(1, vars={"f": [0.1 + 0.2] * 300}))),
    ),
    ("thread_name", lambda: base_event(threads={"values": [{"id": "x", "name": "n" * 2000}]})),
    ("params_many", lambda: base_event(logentry={"message": "x", "params": list(range(2000))})),
    ("params_deep", lambda: base_event(logentry={"message": "x", "params": [_nest(20)]})),
    ("message_only", lambda: {"message": "hello"}),
    ("garbage_ids", lambda: base_event(event_id="nope", timestamp="nope", platform=None)),
    ("sdk", lambda: base_event(sdk={"name": "n" * 300, "version": "1", "integrations": [1]})),
    (
        "request",
        lambda: base_event(request={"url": "http://x", "headers": {"Cookie": "c", "A": 1}}),
    ),
]


@pytest.mark.parametrize(("name", "make"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limits_are_relay_clean(name: str, make: Any) -> None:
    encoded(make())
    encoded(make(), send_default_pii=True)


def test_valid_values_at_the_limit_are_kept_exactly() -> None:
    event = base_event(
        logger="l" * 64,
        server_name="s" * 200,
        transaction="t" * 200,
        tags={"k" * 200: "v" * 200, "a.b:c-d_e": "x"},
        environment="e" * 64,
        release="r" * 200,
        extra={"s": "x" * 8000},
    )
    event["logentry"] = {"message": "m" * 8192, "formatted": "f" * 8192}
    out = encoded(event)
    for key in ("logger", "server_name", "transaction", "environment", "release", "logentry"):
        assert out[key] == event[key]
    assert out["tags"] == event["tags"]
    assert out["extra"] == event["extra"]


def test_stacktrace_keeps_outermost_and_innermost_frames() -> None:
    out = encoded(base_event(exception=_exc(_frames(1000))))
    frames = out["exception"]["values"][0]["stacktrace"]["frames"]
    assert len(frames) == 250
    assert frames[0]["function"] == "f0"
    assert frames[-1]["function"] == "f999"


def test_unknown_top_level_fields_move_to_extra() -> None:
    out = encoded(base_event(foo=1, extra={"a": 2}))
    assert out["extra"] == {"a": 2, "foo": 1}


def test_encode_event_never_raises_on_garbage() -> None:
    for event in (None, "str", 5, {"extra": RaisingRepr()}, {"tags": RaisingRepr()}, HostileDict()):
        data = encode_event(event)  # type: ignore[arg-type]
        assert_relay_clean(json.loads(data))


# --- size trimming ---------------------------------------------------------------------------


def _huge_event() -> dict[str, Any]:
    frames = _frames(250, vars={f"v{i}": "x" * 200 for i in range(10)}, context_line="c" * 1000)
    return base_event(
        extra={f"k{i}": "x" * 16000 for i in range(200)},  # 3.2 MB raw
        breadcrumbs={"values": [{"message": "b" * 8000, "data": {"d": "y" * 2000}}] * 200},
        exception=_exc(frames),
        threads={"values": [{"id": 1, "stacktrace": {"frames": frames}}]},
    )


def test_5mib_event_is_trimmed_to_1mib_keeping_identity() -> None:
    event = _huge_event()
    assert len(json.dumps(event)) > 5 * 1024 * 1024
    out = encoded(event)
    assert out["event_id"] == event["event_id"]
    assert out["level"] == "error"
    assert out["logentry"] == event["logentry"]


@pytest.mark.parametrize("max_bytes", [200_000, 50_000, 5_000, 1_000, 300])
def test_small_max_bytes_is_honoured(max_bytes: int) -> None:
    event = _huge_event()
    out = encoded(event, max_bytes=max_bytes)
    assert out["event_id"] == event["event_id"]
    assert out["level"] == "error"


def test_trimming_order_extra_before_breadcrumbs() -> None:
    event = base_event(
        extra={"big": "x" * 16000, "small": 1},
        breadcrumbs={"values": [{"message": str(i)} for i in range(10)]},
    )
    out = encoded(event, max_bytes=5000)
    assert out["extra"]["small"] == 1
    assert out["extra"]["big"].startswith("<removed")
    assert len(out["breadcrumbs"]["values"]) == 10


def test_absurdly_small_max_bytes_never_exceeded() -> None:
    for max_bytes in (0, 1, 2, 10, 50, 100):
        assert len(encode_event(_huge_event(), max_bytes=max_bytes)) <= max_bytes


def test_small_event_is_serialised_unchanged() -> None:
    event = base_event(extra={"a": 1, "b": "x", "c": [1, 2]}, tags={"k": "v"})
    out = encoded(event)
    assert out == {**event, "timestamp": out["timestamp"]}


# --- property: arbitrary hostile structures --------------------------------------------------

_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.datetimes(),
    st.decimals(allow_nan=True),
    st.builds(RaisingRepr),
    st.just(Color.RED),
    st.builds(Point, st.integers(), st.integers()),
)
_values = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=8),
        st.lists(children, max_size=8).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=20), st.integers()), children, max_size=8),
        st.frozensets(st.integers(), max_size=5),
    ),
    max_leaves=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.dictionaries(st.text(max_size=30), _values, max_size=10),
    crumb_data=_values,
    frame_vars=st.dictionaries(st.text(max_size=10), _values, max_size=5),
    tags=st.dictionaries(
        st.text(max_size=30), st.one_of(st.text(max_size=50), _leaves), max_size=5
    ),
    message=st.text(max_size=100),
    max_bytes=st.sampled_from([1024 * 1024, 20_000, 2_000]),
)
def test_property_hostile_events_encode_relay_clean(
    extra: dict[str, Any],
    crumb_data: Any,
    frame_vars: dict[str, Any],
    tags: dict[str, Any],
    message: str,
    max_bytes: int,
) -> None:
    event = base_event(
        extra=extra,
        tags=tags,
        breadcrumbs={"values": [{"message": message, "data": crumb_data}]},
        exception=_exc(_frames(3, vars=frame_vars)),
    )
    event["logentry"] = {"message": message, "params": [crumb_data], "formatted": message}
    data = encode_event(event, max_bytes=max_bytes)
    RaisingRepr.armed = False
    try:
        assert len(data) <= max_bytes
        assert_relay_clean(json.loads(data.decode("utf-8")))
    finally:
        RaisingRepr.armed = True


@settings(max_examples=200, deadline=None)
@given(_values)
def test_property_safe_value_is_json_safe(value: Any) -> None:
    result = safe_value(value, max_bytes=4096)
    assert is_json_safe(result)
    assert len(dumps(result)) <= 4096 * 2  # escapes are not counted by the Relay-style estimate
