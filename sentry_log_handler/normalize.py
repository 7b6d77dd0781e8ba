"""From a built event dict to wire bytes Relay accepts untouched: :func:`encode_event`.

The worker's one step after :func:`sentry_log_handler.event.build_event`: every interface is
made safe (:mod:`~sentry_log_handler.serialize`), scrubbed (:mod:`~sentry_log_handler.scrub`)
and held to Relay's limits (:mod:`~sentry_log_handler.limits`); then the event is shrunk to
``max_bytes`` (extra first, then breadcrumbs, then frames). It never raises.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
import time
import uuid
from types import MappingProxyType
from typing import Any, Optional

from .fields import (
    clean_dist,
    clean_environment,
    clean_level,
    clean_logger,
    clean_release,
    clean_tag_key,
    clean_tag_value,
)
from .limits import (
    BREADCRUMB_FIELD_MAX,
    BREADCRUMB_MESSAGE_MAX,
    CONTEXT_BYTES,
    CONTEXT_DEPTH,
    CONTEXT_DERIVED_BYTES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    EXC_TYPE_MAX,
    EXC_VALUE_MAX,
    EXTRA_DEPTH,
    EXTRA_TOTAL_BYTES,
    EXTRA_VALUE_BYTES,
    FILTERED,
    FINGERPRINT_ITEM_MAX,
    FINGERPRINT_MAX_ITEMS,
    FRAMES_MAX,
    FUNCTION_MAX,
    I64_MAX,
    KEY_MAX,
    MAX_EVENT_BYTES,
    MECHANISM_FIELD_MAX,
    MESSAGE_MAX,
    PARAMS_MAX_ITEMS,
    PATH_MAX,
    SDK_FIELD_MAX,
    SMALL_BAG_BYTES,
    SMALL_BAG_DEPTH,
    SOURCE_CONTEXT_LINES,
    SOURCE_LINE_MAX,
    THREAD_NAME_MAX,
    TRANSACTION_MAX,
    USER_EMAIL_MAX,
    USER_FIELD_MAX,
)
from .scrub import (
    DEFAULT_DENYLIST,
    NO_PII_DENYLIST,
    matcher_for,
    scrub_tree,
)
from .serialize import (
    Walker,
    dumps,
    safe_str,
    safe_value,
    truncate,
    type_name,
    unrepresentable,
    utf8_len,
    valid_utf8,
)

# --- encode_event ----------------------------------------------------------------------------


def _text(value: Any, max_len: int) -> Optional[str]:
    """A plain string field: None stays None (field dropped), anything else becomes text."""
    if value is None:
        return None
    if type(value) is str:
        if len(value) <= max_len:
            return value if value.isascii() else valid_utf8(value)
        return valid_utf8(truncate(value, max_len))
    return safe_str(value, max_len)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _bag(value: Any, max_bytes: int, depth: int, *, max_string: int = DEFAULT_MAX_STRING) -> Any:
    return safe_value(value, max_depth=depth, max_string=max_string, max_bytes=max_bytes)


def _object_bag(value: Any, max_bytes: int, depth: int) -> dict[str, Any]:
    """A bag that Relay requires to be an object (breadcrumb data, vars, contexts)."""
    if not isinstance(value, (dict, MappingProxyType)):
        value = {"value": value}
    out = _bag(value, max_bytes, depth + 1)
    return out if type(out) is dict else {"value": out}


def _timestamp(value: Any) -> Optional[float]:
    """Epoch seconds for a number, datetime or RFC 3339 string; None if unusable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            f = float(value)
            return f if math.isfinite(f) and f >= 0 else None
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return datetime.datetime.timestamp(value)
    except BaseException:
        return None
    return None


def _flag(value: Any) -> Optional[bool]:
    return value if type(value) is bool else None


def _uint(value: Any) -> Optional[int]:
    if type(value) is int and 0 <= value <= I64_MAX:
        return value
    return None


def _values(value: Any) -> list[Any]:
    """The list inside ``{"values": [...]}`` or a bare list (both forms are accepted)."""
    if isinstance(value, dict):
        value = value.get("values")
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


_FRAME_STR_FIELDS = {
    "filename": PATH_MAX,
    "abs_path": PATH_MAX,
    "module": PATH_MAX,
    "package": PATH_MAX,
    "platform": 64,
    "instruction_addr": 64,
    "function": FUNCTION_MAX,
    "raw_function": FUNCTION_MAX,
    "context_line": SOURCE_LINE_MAX,
}


class _Ctx:
    """Per-event options passed down the field cleaners."""

    __slots__ = ("matches", "pii")

    def __init__(self, send_default_pii: bool) -> None:
        self.pii = send_default_pii
        self.matches = matcher_for(DEFAULT_DENYLIST if send_default_pii else NO_PII_DENYLIST)

    def scrub(self, value: Any) -> Any:
        try:
            return scrub_tree(value, self.matches, 0, set())
        except BaseException:
            return FILTERED


def _frame(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    # Driven by the keys present (a frame has few), since this runs for every frame.
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        limit = _FRAME_STR_FIELDS.get(key)
        if limit is not None:
            out[key] = _text(value, limit)
        elif key == "lineno" or key == "colno":
            _put(out, key, _uint(value))
        elif key == "in_app":
            _put(out, key, _flag(value))
        elif key == "pre_context" or key == "post_context":
            if isinstance(value, (list, tuple)):
                out[key] = [
                    line
                    if type(line) is str and len(line) <= SOURCE_LINE_MAX and line.isascii()
                    else _text(line, SOURCE_LINE_MAX) or ""
                    for line in value[-SOURCE_CONTEXT_LINES:]
                ]
        elif key == "vars":
            out[key] = ctx.scrub(_object_bag(value, SMALL_BAG_BYTES, SMALL_BAG_DEPTH))
    if not out:
        out["function"] = "?"
    return out


def _stacktrace(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    frames = raw.get("frames")
    if not isinstance(frames, (list, tuple)):
        return None
    if len(frames) > FRAMES_MAX:
        # Keep the outermost and the innermost frames: where it started and where it failed.
        half = FRAMES_MAX // 2
        frames = list(frames[:half]) + list(frames[-(FRAMES_MAX - half) :])
    cleaned = [f for f in (_frame(f, ctx) for f in frames) if f is not None]
    if not cleaned:
        return None  # Relay rejects an empty frames list
    return {"frames": cleaned}


def _mechanism(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {"type": _text(raw.get("type"), MECHANISM_FIELD_MAX) or "generic"}
    _put(out, "handled", _flag(raw.get("handled")))
    _put(out, "synthetic", _flag(raw.get("synthetic")))
    _put(out, "is_exception_group", _flag(raw.get("is_exception_group")))
    _put(out, "source", _text(raw.get("source"), MECHANISM_FIELD_MAX))
    _put(out, "description", _text(raw.get("description"), MESSAGE_MAX))
    _put(out, "help_link", _text(raw.get("help_link"), PATH_MAX))
    _put(out, "exception_id", _uint(raw.get("exception_id")))
    _put(out, "parent_id", _uint(raw.get("parent_id")))
    if raw.get("data") is not None:
        out["data"] = _object_bag(raw.get("data"), SMALL_BAG_BYTES, SMALL_BAG_DEPTH)
    return out


def _thread_id(value: Any) -> Any:
    if type(value) is int and 0 <= value <= I64_MAX:
        return value
    return _text(value, USER_FIELD_MAX)


def _exception(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            item = {"type": type_name(item), "value": item}
        out: dict[str, Any] = {}
        _put(out, "type", _text(item.get("type"), EXC_TYPE_MAX))
        _put(out, "value", _text(item.get("value"), EXC_VALUE_MAX))
        if "type" not in out and "value" not in out:
            out["type"] = "Exception"  # Relay requires type or value
        _put(out, "module", _text(item.get("module"), EXC_TYPE_MAX))
        _put(out, "thread_id", _thread_id(item.get("thread_id")))
        _put(out, "mechanism", _mechanism(item.get("mechanism")))
        _put(out, "stacktrace", _stacktrace(item.get("stacktrace"), ctx))
        values.append(out)
    return {"values": values} if values else None


def _threads(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            continue
        out: dict[str, Any] = {}
        _put(out, "id", _thread_id(item.get("id")))
        _put(out, "name", _text(item.get("name"), THREAD_NAME_MAX))
        for key in ("current", "crashed", "main"):
            _put(out, key, _flag(item.get(key)))
        _put(out, "stacktrace", _stacktrace(item.get("stacktrace"), ctx))
        values.append(out)
    return {"values": values} if values else None


def _breadcrumbs(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            item = {"message": item}
        out: dict[str, Any] = {}
        _put(out, "timestamp", _timestamp(item.get("timestamp")))
        _put(out, "type", _text(item.get("type"), BREADCRUMB_FIELD_MAX))
        _put(out, "category", _text(item.get("category"), BREADCRUMB_FIELD_MAX))
        if item.get("level") is not None:
            out["level"] = clean_level(item.get("level"))
        _put(out, "message", _text(item.get("message"), BREADCRUMB_MESSAGE_MAX))
        if item.get("data") is not None:
            out["data"] = ctx.scrub(_object_bag(item.get("data"), SMALL_BAG_BYTES, SMALL_BAG_DEPTH))
        values.append(out)
    return {"values": values} if values else None


_HEX32 = re.compile(r"[0-9a-fA-F]{32}\Z")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}\Z")
_UNSCRUBBED_CONTEXTS = ("os", "runtime")


def _contexts(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for name, value in list(raw.items())[:DEFAULT_MAX_ITEMS]:
        key = _text(name, KEY_MAX) or "context"
        budget = CONTEXT_DERIVED_BYTES if key in _UNSCRUBBED_CONTEXTS else CONTEXT_BYTES
        bag = _object_bag(value, budget, CONTEXT_DEPTH)
        if key == "trace":
            trace_id, span_id = bag.get("trace_id"), bag.get("span_id")
            if not (
                isinstance(trace_id, str)
                and _HEX32.match(trace_id)
                and isinstance(span_id, str)
                and _HEX16.match(span_id)
            ):
                continue  # Relay rejects a trace context without valid ids
            parent = bag.get("parent_span_id")
            if parent is not None and not (isinstance(parent, str) and _HEX16.match(parent)):
                del bag["parent_span_id"]
        if "type" in bag and not isinstance(bag["type"], str):
            bag["type"] = str(bag["type"])
        out[key] = bag if key in _UNSCRUBBED_CONTEXTS else ctx.scrub(bag)
    return out or None


def _user(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for name, value in list(raw.items())[:DEFAULT_MAX_ITEMS]:
        if value is None:
            continue
        key = _text(name, KEY_MAX) or "user"
        if key == "ip_address":
            ip = _text(value, 64)
            if ctx.pii and ip is not None and _valid_ip(ip):
                out[key] = ip
        elif key == "email":
            out[key] = _text(value, USER_EMAIL_MAX)
        elif key in ("id", "username", "name", "segment"):
            out[key] = _text(value, USER_FIELD_MAX)
        else:
            out[key] = _bag(value, CONTEXT_BYTES, CONTEXT_DEPTH)
    return ctx.scrub(out) if out else None


def _valid_ip(text: str) -> bool:
    if text == "{{auto}}":
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _tags(raw: Any) -> Optional[dict[str, str]]:
    if isinstance(raw, dict):
        pairs: Any = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        pairs = [p for p in raw if isinstance(p, (list, tuple)) and len(p) == 2]
    else:
        return None
    out: dict[str, str] = {}
    for k, v in pairs[:DEFAULT_MAX_ITEMS]:
        key = clean_tag_key(k)
        if key is not None and v is not None:
            out[key] = clean_tag_value(v)
    return out or None


def _logentry(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        raw = {"formatted": raw}
    out: dict[str, Any] = {}
    _put(out, "message", _text(raw.get("message"), MESSAGE_MAX))
    _put(out, "formatted", _text(raw.get("formatted"), MESSAGE_MAX))
    params = raw.get("params")
    if params is not None:
        if not isinstance(params, (dict, MappingProxyType)):
            if not isinstance(params, (list, tuple)):
                params = [params]
            params = list(params[:PARAMS_MAX_ITEMS])
        out["params"] = safe_value(
            params,
            max_depth=SMALL_BAG_DEPTH + 1,
            max_items=PARAMS_MAX_ITEMS,
            max_bytes=SMALL_BAG_BYTES,
        )
    if "message" not in out and "formatted" not in out:
        return None
    return out


def _fingerprint(raw: Any) -> Optional[list[str]]:
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)):
        raw = [raw]
    return [safe_str(part, FINGERPRINT_ITEM_MAX) for part in raw[:FINGERPRINT_MAX_ITEMS]]


def _sdk(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    _put(out, "name", _text(raw.get("name"), SDK_FIELD_MAX))
    _put(out, "version", _text(raw.get("version"), SDK_FIELD_MAX))
    integrations = raw.get("integrations")
    if isinstance(integrations, (list, tuple)):
        out["integrations"] = [safe_str(i, SDK_FIELD_MAX) for i in integrations[:100]]
    packages = raw.get("packages")
    if isinstance(packages, (list, tuple)):
        out["packages"] = [
            {
                "name": safe_str(p.get("name"), SDK_FIELD_MAX),
                "version": safe_str(p.get("version"), SDK_FIELD_MAX),
            }
            for p in packages[:100]
            if isinstance(p, dict)
        ]
    return out if "name" in out and "version" in out else None


def _modules(raw: Any) -> Optional[dict[str, str]]:
    if not isinstance(raw, dict):
        return None
    return {
        safe_str(k, KEY_MAX): safe_str(v, SDK_FIELD_MAX)
        for k, v in list(raw.items())[:DEFAULT_MAX_ITEMS]
    }


def _request(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("url", "method", "query_string"):
        _put(out, key, _text(raw.get(key), PATH_MAX))
    for key in ("headers", "cookies", "env", "data"):
        if raw.get(key) is not None:
            value = ctx.scrub(_bag(raw.get(key), CONTEXT_BYTES, CONTEXT_DEPTH))
            if key != "data" and not isinstance(value, dict):
                continue
            if key == "headers":  # Relay wants header values to be strings
                value = {k: v if isinstance(v, str) else safe_str(v) for k, v in value.items()}
            out[key] = value
    return out or None


def _extra(raw: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    """Each value in its own 16 KiB bag; then the whole within 256 KiB, largest values first."""
    out: dict[str, Any] = {}
    total = 2
    sizes: dict[str, int] = {}
    for name, value in raw.items():
        if len(out) >= DEFAULT_MAX_ITEMS:
            break
        key = _text(name, KEY_MAX) or "extra"
        walker = Walker(EXTRA_DEPTH, DEFAULT_MAX_STRING * 2, DEFAULT_MAX_ITEMS, EXTRA_VALUE_BYTES)
        try:
            safe = walker.value(value, 0)
        except BaseException:
            safe = unrepresentable(value)
        out[key] = safe
        size = EXTRA_VALUE_BYTES - walker.remaining + utf8_len(key) + 4
        sizes[key] = size
        total += size
    if total > EXTRA_TOTAL_BYTES:
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            note = f"<removed: {sizes[key]} bytes over the extra size limit>"
            total -= sizes[key] - (len(note) + utf8_len(key) + 6)
            out[key] = note
            if total <= EXTRA_TOTAL_BYTES:
                break
    scrubbed = ctx.scrub(out)
    return scrubbed if isinstance(scrubbed, dict) else {}


# Top-level attributes Relay knows and we clean; anything else goes into extra.
_HANDLED = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "platform",
        "level",
        "logger",
        "logentry",
        "message",
        "transaction",
        "server_name",
        "release",
        "dist",
        "environment",
        "tags",
        "user",
        "request",
        "contexts",
        "breadcrumbs",
        "exception",
        "threads",
        "extra",
        "fingerprint",
        "sdk",
        "modules",
        "type",
    }
)
_EVENT_TYPES = frozenset({"default", "error"})


def _normalize(event: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {"extra": {"event": event}}
    out: dict[str, Any] = {}
    event_id = event.get("event_id")
    if not (isinstance(event_id, str) and _HEX32.match(event_id)):
        event_id = uuid.uuid4().hex
    out["event_id"] = event_id.lower()
    ts = _timestamp(event.get("timestamp"))
    out["timestamp"] = ts if ts is not None else time.time()
    out["platform"] = _text(event.get("platform"), 64) or "python"
    out["level"] = clean_level(event.get("level", "error"))
    if event.get("type") in _EVENT_TYPES:
        out["type"] = event["type"]
    if event.get("logger") is not None:
        out["logger"] = clean_logger(event["logger"])
    logentry = event.get("logentry")
    if logentry is None and event.get("message") is not None:
        logentry = {"formatted": event["message"]}
    if logentry is not None:
        _put(out, "logentry", _logentry(logentry))
    _put(out, "transaction", _text(event.get("transaction"), TRANSACTION_MAX))
    if event.get("server_name") is not None:
        out["server_name"] = clean_tag_value(event["server_name"])
    _put(out, "release", clean_release(event.get("release")))
    _put(out, "dist", clean_dist(event.get("dist")))
    _put(out, "environment", clean_environment(event.get("environment")))
    _put(out, "tags", _tags(event.get("tags")))
    _put(out, "user", _user(event.get("user"), ctx))
    _put(out, "request", _request(event.get("request"), ctx))
    _put(out, "contexts", _contexts(event.get("contexts"), ctx))
    _put(out, "breadcrumbs", _breadcrumbs(event.get("breadcrumbs"), ctx))
    _put(out, "exception", _exception(event.get("exception"), ctx))
    _put(out, "threads", _threads(event.get("threads"), ctx))
    _put(out, "fingerprint", _fingerprint(event.get("fingerprint")))
    _put(out, "sdk", _sdk(event.get("sdk")))
    _put(out, "modules", _modules(event.get("modules")))
    extra_raw = event.get("extra")
    extra: dict[str, Any] = dict(extra_raw) if isinstance(extra_raw, dict) else {}
    if extra_raw is not None and not isinstance(extra_raw, dict):
        extra["extra"] = extra_raw
    for key in event:
        if key not in _HANDLED and key not in extra:
            extra[key if type(key) is str else safe_str(key, KEY_MAX)] = event[key]
    if extra:
        out["extra"] = _extra(extra, ctx)
    return out


def encode_event(
    event: dict[str, Any],
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    send_default_pii: bool = False,
) -> bytes:
    """The worker's one step from a built event dict to the event item's payload bytes.

    Every field is made JSON-safe, valid for Relay and within its limits (so the server trims
    and rejects nothing), sensitive values are scrubbed, and the result is at most ``max_bytes``
    (trimming extra, then breadcrumbs, then frames, then vars; message, level and event_id are
    kept to the end). The common small event is serialised exactly once. Never raises.
    """
    try:
        ctx = _Ctx(send_default_pii)
        normalized = _normalize(event, ctx)
        data = dumps(normalized)
        if len(data) <= max_bytes:
            return data
        return _shrink(normalized, max_bytes)
    except BaseException:  # last line of defence: still send something true and small
        return _last_resort(event, max_bytes)


# --- shrinking to max_bytes ------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(dumps(value))


def _stacks(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for part in ("exception", "threads"):
        for item in event.get(part, {}).get("values", []):
            stack = item.get("stacktrace")
            if stack is not None:
                found.append(stack)
    return found


def _shrink(event: dict[str, Any], max_bytes: int) -> bytes:
    """Trim in order of least value lost until the event fits; see encode_event."""
    total = _size(event)
    extra = event.get("extra")
    if extra:
        sizes = {k: _size(v) for k, v in extra.items()}
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if total <= max_bytes:
                break
            note = "<removed: event size limit>"
            total -= sizes[key] - (len(note) + 2)
            extra[key] = note
        total = _size(event)

    crumbs = event.get("breadcrumbs", {}).get("values")
    if crumbs and total > max_bytes:
        sizes_list = [_size(c) + 1 for c in crumbs]
        drop = 0
        while drop < len(crumbs) and total > max_bytes:  # oldest first
            total -= sizes_list[drop]
            drop += 1
        del crumbs[:drop]
        if not crumbs:
            del event["breadcrumbs"]
        total = _size(event)

    if total > max_bytes:
        total = _trim_frames(event, total, max_bytes, keep=10)
    if total > max_bytes:
        for stack in _stacks(event):
            for frame in stack["frames"]:
                for key in ("vars", "pre_context", "post_context"):
                    frame.pop(key, None)
        total = _size(event)
    if total > max_bytes:
        total = _trim_frames(event, total, max_bytes, keep=2)
    if total <= max_bytes:
        return dumps(event)
    return _last_resort(event, max_bytes)


def _trim_frames(event: dict[str, Any], total: int, max_bytes: int, keep: int) -> int:
    """Remove middle frames of the longest stacks, keeping ``keep`` outer+inner frames."""
    for stack in sorted(_stacks(event), key=lambda s: len(s["frames"]), reverse=True):
        frames = stack["frames"]
        while len(frames) > keep and total > max_bytes:
            total -= _size(frames.pop(len(frames) // 2)) + 1
    return _size(event)


def _last_resort(event: Any, max_bytes: int) -> bytes:
    """Identity and message only, cut down until it fits; never raises."""
    try:
        source: dict[str, Any] = event if isinstance(event, dict) else {}
        event_id = source.get("event_id")
        if not (isinstance(event_id, str) and _HEX32.match(event_id)):
            event_id = uuid.uuid4().hex
        ts = _timestamp(source.get("timestamp"))
        minimal: dict[str, Any] = {
            "event_id": event_id.lower(),
            "timestamp": ts if ts is not None else time.time(),
            "platform": "python",
            "level": clean_level(source.get("level", "error")),
        }
        if source.get("logger") is not None:
            minimal["logger"] = clean_logger(source["logger"])
        _put(minimal, "release", clean_release(source.get("release")))
        _put(minimal, "environment", clean_environment(source.get("environment")))
        logentry = _logentry(source.get("logentry") or {"formatted": source.get("message")})
        if logentry is not None:
            logentry.pop("params", None)
            minimal["logentry"] = logentry
        data = dumps(minimal)
        limit = MESSAGE_MAX
        while len(data) > max_bytes and "logentry" in minimal and limit > 16:
            limit //= 2
            for key in ("message", "formatted"):
                if key in minimal["logentry"]:
                    minimal["logentry"][key] = truncate(minimal["logentry"][key], limit)
            data = dumps(minimal)
        for key in ("logentry", "environment", "release", "logger", "platform", "timestamp"):
            if len(data) <= max_bytes:
                break
            minimal.pop(key, None)
            data = dumps(minimal)
        if len(data) <= max_bytes:
            return data
    except BaseException:
        pass
    fallback = b'{"event_id":"' + uuid.uuid4().hex.encode() + b'"}'
    return fallback if len(fallback) <= max_bytes else b"{}"[: max(max_bytes, 0)]
