"""The one event builder: every front door (handler, structlog processor, one-shot send)
describes what happened as a :class:`Capture`, and :func:`build_event` turns it into a Sentry
event dict.

The split matters for speed. A ``Capture`` is what the calling thread must take *now* to keep
the event true to the moment (formatted message, a shallow copy of the extras, the exception
object, breadcrumbs so far); :func:`build_event` runs later on the worker thread and does the
expensive parts (stack frames, source lines, contexts). Values in the result may still be
arbitrary Python objects: :func:`sentry_log_handler.serialize.encode_event` makes them safe.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from . import stacktrace
from ._version import SDK_NAME, __version__

__all__ = ["SDK_INFO", "Capture", "EventDefaults", "build_event", "new_event_id", "parse_tags"]

SDK_INFO = {"name": SDK_NAME, "version": __version__}


def new_event_id() -> str:
    """32 lowercase hex digits, as Sentry wants.

    Random bytes straight from the OS: unique across forked processes, and a quarter of the
    cost of ``uuid.uuid4().hex`` on the caller's thread (no UUID object to build).
    """
    return os.urandom(16).hex()


def parse_tags(tags: Any, *, strict: bool = True) -> tuple[dict[str, str], list[Any]]:
    """Tags as a dict, or as ``["key:value", ...]`` like the original job.

    Returns ``(tags, rejected)``. With ``strict`` an entry without ``:`` (or an empty key)
    raises ``ValueError``; without it, such entries come back in ``rejected`` so the caller
    can keep them (the handler files them under extra rather than lose them).
    """
    result: dict[str, str] = {}
    rejected: list[Any] = []
    if tags is None:
        return result, rejected
    if isinstance(tags, Mapping):
        for key, value in tags.items():
            result[str(key)] = value if isinstance(value, str) else _text(value)
        return result, rejected
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        if strict:
            raise ValueError(
                f"tags must be a list of 'key:value' strings or a dict, not {type(tags).__name__}"
            )
        return result, [tags]
    for entry in tags:
        key, sep, value = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        key = key.strip()
        if not sep or not key:
            if strict:
                raise ValueError(f"invalid tag {entry!r}: expected 'key:value'")
            rejected.append(entry)
            continue
        result[key] = value.strip()
    return result, rejected


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class EventDefaults:
    """Per-client facts stamped on every event; computed once, not per event."""

    __slots__ = (
        "contexts",
        "environment",
        "in_app_exclude",
        "in_app_include",
        "include_local_variables",
        "release",
        "server_name",
        "tags",
    )

    def __init__(
        self,
        *,
        environment: Optional[str] = None,
        release: Optional[str] = None,
        server_name: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        include_local_variables: bool = False,
        in_app_include: Iterable[str] = (),
        in_app_exclude: Iterable[str] = (),
    ) -> None:
        self.environment = environment or os.environ.get("SENTRY_ENVIRONMENT") or "production"
        self.release = release or os.environ.get("SENTRY_RELEASE") or None
        self.server_name = server_name if server_name is not None else platform.node()
        self.tags = dict(tags or {})
        self.include_local_variables = include_local_variables
        self.in_app_include = tuple(in_app_include)
        self.in_app_exclude = tuple(in_app_exclude)
        self.contexts = _static_contexts()


def _static_contexts() -> dict[str, dict[str, Any]]:
    impl = platform.python_implementation()
    version = ".".join(str(part) for part in sys.version_info[:3])
    return {
        "runtime": {"name": impl, "version": version},
        "os": {"name": platform.system(), "version": platform.release()},
    }


class Capture:
    """What the caller thread took at the moment of the call (see the module docstring).

    Plain attributes with ``__slots__``: building one must cost the caller next to nothing.
    """

    __slots__ = (
        "breadcrumbs",
        "contexts",
        "environment",
        "event_id",
        "exc",
        "extra",
        "fingerprint",
        "formatted",
        "level",
        "logger",
        "mechanism",
        "message",
        "params",
        "process_id",
        "process_name",
        "release",
        "stack",
        "tags",
        "thread_id",
        "thread_name",
        "timestamp",
        "user",
    )

    def __init__(
        self,
        message: str,
        *,
        level: str = "error",
        params: Any = None,
        formatted: Optional[str] = None,
        logger: Optional[str] = None,
        timestamp: Optional[float] = None,
        event_id: Optional[str] = None,
        tags: Any = None,
        user: Optional[Mapping[str, Any]] = None,
        fingerprint: Any = None,
        extra: Optional[Mapping[str, Any]] = None,
        exc: Optional[BaseException] = None,
        stack: Optional[list[stacktrace.StackEntry]] = None,
        breadcrumbs: Optional[list[dict[str, Any]]] = None,
        mechanism: str = "logging",
        thread_id: Optional[int] = None,
        thread_name: Optional[str] = None,
        process_id: Optional[int] = None,
        process_name: Optional[str] = None,
        environment: Optional[str] = None,
        release: Optional[str] = None,
        contexts: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.message = message
        self.level = level
        self.params = params
        self.formatted = formatted
        self.logger = logger
        self.timestamp = time.time() if timestamp is None else timestamp
        self.event_id = event_id or new_event_id()
        self.tags = tags
        self.user = user
        self.fingerprint = fingerprint
        self.extra = extra
        self.exc = exc
        self.stack = stack
        self.breadcrumbs = breadcrumbs
        self.mechanism = mechanism
        self.thread_id = thread_id
        self.thread_name = thread_name
        self.process_id = process_id
        self.process_name = process_name
        self.environment = environment
        self.release = release
        self.contexts = contexts

    def approximate_size(self) -> int:
        """A cheap, rough byte estimate used to bound the queue's memory (not exact)."""
        size = 512 + len(self.formatted or self.message or "")
        if self.extra:
            size += 64 * len(self.extra)
        if self.breadcrumbs:
            size += 160 * len(self.breadcrumbs)
        if self.exc is not None:
            size += 4096
        if self.stack:
            size += 64 * len(self.stack)
        return size


def build_event(capture: Capture, defaults: EventDefaults) -> dict[str, Any]:
    """Turn a capture into a Sentry event dict (values not yet made JSON-safe)."""
    event: dict[str, Any] = {
        "event_id": capture.event_id,
        "timestamp": capture.timestamp,
        "platform": "python",
        "level": capture.level,
        "logentry": _logentry(capture),
        "server_name": defaults.server_name,
        "sdk": dict(SDK_INFO),
        "environment": capture.environment or defaults.environment,
    }
    if capture.logger:
        event["logger"] = capture.logger
    release = capture.release or defaults.release
    if release:
        event["release"] = release

    contexts: dict[str, Any] = {name: dict(value) for name, value in defaults.contexts.items()}
    if capture.process_id is not None:
        contexts["process"] = {"pid": capture.process_id, "name": capture.process_name}
    if capture.contexts:
        contexts.update(capture.contexts)
    event["contexts"] = contexts

    extra: dict[str, Any] = dict(capture.extra) if capture.extra else {}
    tags = dict(defaults.tags)
    more_tags, rejected = parse_tags(capture.tags, strict=False)
    tags.update(more_tags)
    if rejected:
        extra["rejected_tags"] = rejected
    if tags:
        event["tags"] = tags
    if capture.user:
        event["user"] = dict(capture.user)
    if extra:
        event["extra"] = extra
    fingerprint = _fingerprint(capture.fingerprint)
    if fingerprint:
        event["fingerprint"] = fingerprint

    frame_opts: dict[str, Any] = {
        "include_locals": defaults.include_local_variables,
        "in_app_include": defaults.in_app_include,
        "in_app_exclude": defaults.in_app_exclude,
    }
    if capture.exc is not None:
        event["exception"] = stacktrace.exception_interface(
            capture.exc, mechanism_type=capture.mechanism, handled=True, **frame_opts
        )
    if capture.thread_id is not None:
        if capture.stack:
            threads = stacktrace.threads_interface(
                capture.stack,
                thread_id=capture.thread_id,
                thread_name=capture.thread_name or "",
                **frame_opts,
            )
        else:
            thread: dict[str, Any] = {"id": capture.thread_id, "current": True, "crashed": False}
            if capture.thread_name:
                thread["name"] = capture.thread_name
            threads = {"values": [thread]}
        event["threads"] = threads
    if capture.breadcrumbs:
        event["breadcrumbs"] = {"values": list(capture.breadcrumbs)}
    return event


def _logentry(capture: Capture) -> dict[str, Any]:
    formatted = capture.formatted if capture.formatted is not None else capture.message
    message = capture.message if isinstance(capture.message, str) else _text(capture.message)
    entry: dict[str, Any] = {"message": message, "formatted": formatted}
    params = capture.params
    if params:
        if isinstance(params, Mapping):
            entry["params"] = dict(params)
        elif isinstance(params, (list, tuple)):
            entry["params"] = list(params)
        else:
            entry["params"] = [params]
    elif formatted == message:
        del entry["formatted"]
    return entry


def _fingerprint(value: Any) -> Optional[list[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [part if isinstance(part, str) else _text(part) for part in value]
    return [_text(value)]
