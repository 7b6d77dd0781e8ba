"""``SentryProcessor``: the structlog front door.

It is a thin front door onto the same :class:`~sentry_log_handler.client.Client` as
``SentryHandler``: on the caller's thread it only takes a snapshot of the event dict (a
:class:`~sentry_log_handler.event.Capture`) and queues it; frames, scrubbing, limits,
serialisation and HTTP all happen on the client's worker. It never raises into the chain and
returns the very event dict it was given, so renderers further down see the call unchanged.

Where it sits in the chain matters only for exceptions: before ``format_exc_info`` /
``dict_tracebacks`` it sees ``exc_info`` (the exception object itself); after them it sees the
rendered ``exception`` key and takes the exception being handled (``sys.exc_info()``), provided
that is the one that was rendered; otherwise the rendered text stays in ``extra``.

When structlog hands the call on to stdlib ``logging`` where a ``SentryHandler`` listens too,
the processor marks what it took (:mod:`sentry_log_handler.dedupe`) and the handler skips it:
one call, one event, with nothing for the user to configure away.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping, MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any, Optional, Union

from . import dedupe, levels, stacktrace
from .client import Client
from .event import Capture, parse_tags
from .handler import _IGNORED_EXACT, _IGNORED_PREFIXES
from .options import Options
from .serialize import safe_str

if TYPE_CHECKING:
    from .handler import SentryHandler

__all__ = ["SentryProcessor"]

EventDict = MutableMapping[str, Any]

ALL_TAGS = "__all__"

# structlog level names (``add_log_level`` output and method names) → logging numbers.
_LEVELNOS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "notset": logging.NOTSET,
}

# Keys that describe the call itself (structlog's or ours), never copied into extra or data.
_STRUCTURAL = frozenset(
    {"event", "level", "logger", "exc_info", "stack_info", "positional_args", "_record",
     "_from_structlog"}
)
# Keys with a place of their own in the event.
_MAPPED = frozenset({"user_id", "user", "fingerprint", "tags"})

_TAG_KEY = re.compile(r"[a-zA-Z0-9_.:-]{1,200}")
_AUTO_TAG_KEY = re.compile(r"[a-zA-Z0-9_.:-]{1,32}")
_AUTO_TAG_VALUE_MAX = 200
_KEY_CACHE_MAX = 4096

# How far up a wrapping processor may put structlog's loop.
_MAX_WRAPPER_DEPTH = 6

_SKIP_ROOTS = frozenset({"structlog", "logging", "sentry_log_handler"})


class SentryProcessor:
    """A structlog processor that sends events at or above ``level`` to Sentry.

    Put it before the renderer. Events at or above ``level`` (default ERROR) are sent;
    events at or above ``breadcrumb_level`` (default INFO) but below ``level`` become
    breadcrumbs of the next event from the same thread or asyncio task.

    ``tag_keys``: keys of the event dict sent as tags (a list), or ``"__all__"`` for every
    key whose value is a scalar and whose name is a valid tag key. ``user_id``/``user`` become
    the user, ``fingerprint`` the fingerprint, ``tags`` (a dict) more tags; every other key
    goes to ``extra``. ``event_id_key``: if set, the Sentry event id is added to the event dict
    under that key, so the rendered log line can point at the event.

    ``handler=`` (a ``SentryHandler``) or ``client=`` shares that pipeline (one worker, one
    queue, one breadcrumb buffer); otherwise the processor builds and owns a client from
    ``dsn`` and the keyword options (the same names as ``SentryHandler``'s). Without a DSN (none
    given and ``SENTRY_DSN`` unset) the processor passes events through untouched.
    """

    def __init__(
        self,
        dsn: Optional[str] = None,
        *,
        level: Union[int, str] = logging.ERROR,
        breadcrumb_level: Union[int, str, None] = logging.INFO,
        tag_keys: Union[str, Iterable[str], None] = None,
        event_id_key: Optional[str] = None,
        client: Optional[Client] = None,
        handler: Optional[SentryHandler] = None,
        **options: Any,
    ) -> None:
        # Validate everything before building a client, so a typo leaves no client behind.
        self.level = levels.to_levelno(level)
        self.breadcrumb_level: Optional[int] = (
            None if breadcrumb_level is None else levels.to_levelno(breadcrumb_level)
        )
        self._all_tags, self._tag_keys = _parse_tag_keys(tag_keys)
        if event_id_key is not None and not isinstance(event_id_key, str):
            raise TypeError(f"event_id_key must be a string, not {event_id_key!r}")
        self.event_id_key = event_id_key
        if handler is not None:
            if client is not None and client is not handler.client:
                raise TypeError("pass either handler= or client=, not both")
            client = handler.client
        if client is not None:
            if dsn is not None or options:
                raise TypeError("pass either client=/handler= or DSN/options, not both")
            self.client = client
            self._owns_client = False
        else:
            self.client = Client(Options(dsn, **options))
            self._owns_client = True
        # Keys that never reach extra: structural ones, mapped ones, and our own output key.
        skip = _STRUCTURAL | _MAPPED
        self._not_extra = skip | {event_id_key} if event_id_key else skip
        self._auto_tag_ok: dict[str, bool] = {}

    def __repr__(self) -> str:
        return (
            f"<SentryProcessor {logging.getLevelName(self.level)}"
            f" dsn={self.client.options.dsn!s}>"
        )

    # -- the chain ---------------------------------------------------------------------

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        try:
            if not self._take(logger, method_name, event_dict):
                # Not ours: an older call's claim must not cover this call's stdlib record.
                dedupe.release(event_dict)
        except Exception as exc:  # RecursionError too: nothing here may break the app's call
            self.client.errors.report_exception("SentryProcessor", exc)
        return event_dict

    def _take(self, logger: Any, method_name: str, event_dict: EventDict) -> bool:
        """Queue an event or keep a breadcrumb; False when the call is not for this processor."""
        client = self.client
        if not client.enabled:
            return False
        levelno = _levelno(event_dict.get("level"), method_name)
        if levelno < self.level:
            floor = self.breadcrumb_level
            if floor is None or levelno < floor:
                return False
            is_event = False
        else:
            is_event = True
        record = event_dict.get("_record")
        if not isinstance(record, logging.LogRecord):
            record = None
        name = _logger_name(event_dict, logger, record)
        if name is not None and (name in _IGNORED_EXACT or name.startswith(_IGNORED_PREFIXES)):
            return False
        if client.is_worker_thread():
            return False
        if record is not None and dedupe.seen_record(record):
            return True  # inside a ProcessorFormatter, on a record that was already taken

        if is_event:
            event_id = client.capture(self._capture(event_dict, levelno, name))
            if event_id is not None and self.event_id_key is not None:
                event_dict[self.event_id_key] = event_id
        else:
            client.breadcrumbs.add(self._breadcrumb(event_dict, levelno, name))

        if isinstance(logger, logging.Logger):
            dedupe.mark_captured(
                event_dict, logger_name=logger.name, frame=_structlog_call_frame()
            )
        else:
            dedupe.mark_captured(event_dict)
        return True

    def _capture(self, event_dict: EventDict, levelno: int, name: Optional[str]) -> Capture:
        """The caller-thread snapshot: everything else happens on the worker."""
        not_extra = self._not_extra
        tag_keys = self._tag_keys
        all_tags = self._all_tags
        extra: dict[str, Any] = {}
        tags: Optional[dict[str, Any]] = None
        for key, value in event_dict.items():
            if key in tag_keys:  # named explicitly: a tag even if it also has another role
                if tags is None:
                    tags = {}
                tags[key] = value
            elif key in not_extra:
                continue
            elif all_tags and self._auto_tag(key, value):
                if tags is None:
                    tags = {}
                tags[key] = value
            else:
                extra[key] = value

        more_tags = event_dict.get("tags")
        if more_tags is not None:
            parsed, rejected = parse_tags(more_tags, strict=False)
            tags = {**parsed, **tags} if tags else parsed
            if rejected:
                extra["rejected_tags"] = rejected

        user: Optional[dict[str, Any]] = None
        user_value = event_dict.get("user")
        if isinstance(user_value, Mapping):
            user = dict(user_value)
        elif user_value is not None:
            extra["user"] = user_value
        user_id = event_dict.get("user_id")
        if user_id is not None:
            if user is None:
                user = {}
            user["id"] = user_id

        fingerprint = event_dict.get("fingerprint")
        if isinstance(fingerprint, (list, tuple)):
            fingerprint = list(fingerprint)

        exc = _exception(event_dict.get("exc_info"))
        if exc is None:
            rendered = event_dict.get("exception")
            if rendered is not None:
                current = sys.exc_info()[1]
                if current is not None and _describes(rendered, current):
                    exc = current
                    extra.pop("exception", None)

        message, params, formatted = _message(event_dict)
        stack = None
        if event_dict.get("stack_info") is True:
            stack = stacktrace.capture_stack(skip=_structlog_frame_skip)
        thread = threading.current_thread()
        return Capture(
            message,
            level=levels.from_levelno(levelno),
            params=params,
            formatted=formatted,
            logger=name,
            tags=tags,
            user=user,
            fingerprint=fingerprint,
            extra=extra,
            exc=exc,
            stack=stack,
            breadcrumbs=self.client.breadcrumbs.take(),
            mechanism="structlog",
            thread_id=thread.ident,
            thread_name=thread.name,
            process_id=os.getpid(),
            process_name=_process_name(),
        )

    def _breadcrumb(
        self, event_dict: EventDict, levelno: int, name: Optional[str]
    ) -> dict[str, Any]:
        crumb: dict[str, Any] = {
            "timestamp": time.time(),
            "type": "log",
            "level": levels.from_levelno(levelno),
            "message": _message(event_dict)[2],
        }
        if name is not None:
            crumb["category"] = name
        data = {key: value for key, value in event_dict.items() if key not in _STRUCTURAL}
        if data:
            crumb["data"] = data
        return crumb

    def _auto_tag(self, key: str, value: Any) -> bool:
        """For ``"__all__"``: scalar values under valid tag keys (key checks are cached)."""
        if value is None or not isinstance(value, (str, int, float)):
            return False
        if isinstance(value, str) and (len(value) > _AUTO_TAG_VALUE_MAX or "\n" in value):
            return False
        cache = self._auto_tag_ok
        ok = cache.get(key)
        if ok is None:
            ok = isinstance(key, str) and _AUTO_TAG_KEY.fullmatch(key) is not None
            if len(cache) < _KEY_CACHE_MAX:
                cache[key] = ok
        return ok

    # -- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for queued events; ``None`` waits at most ``shutdown_timeout`` (as the handler)."""
        if timeout is None:
            timeout = self.client.options.shutdown_timeout
        return self.client.flush(timeout)

    def close(self) -> None:
        """Flush (bounded by ``shutdown_timeout``) and stop the worker if this processor owns it.

        A shared client (``handler=``/``client=``) is left to its owner.
        """
        if self._owns_client:
            self.client.close()


def _parse_tag_keys(tag_keys: Union[str, Iterable[str], None]) -> tuple[bool, frozenset[str]]:
    if tag_keys is None:
        return False, frozenset()
    if isinstance(tag_keys, str):
        if tag_keys == ALL_TAGS:
            return True, frozenset()
        raise ValueError(
            f"tag_keys must be a list of key names or {ALL_TAGS!r}, not the string {tag_keys!r}"
        )
    keys = frozenset(tag_keys)
    for key in keys:
        if key == ALL_TAGS:
            return True, frozenset()
        if not isinstance(key, str) or _TAG_KEY.fullmatch(key) is None:
            raise ValueError(
                f"invalid tag key {key!r} in tag_keys: expected 1-200 characters of"
                " [a-zA-Z0-9_.:-]"
            )
    return False, keys


def _levelno(level: Any, method_name: str) -> int:
    """``add_log_level``'s ``level`` key if any, else the method name; unknown → INFO."""
    if isinstance(level, str):
        found = _LEVELNOS.get(level)
        if found is not None:
            return found
        found = _LEVELNOS.get(level.lower())
        if found is not None:
            return found
    elif isinstance(level, int) and not isinstance(level, bool):
        return level
    found = _LEVELNOS.get(method_name)
    if found is not None:
        return found
    try:
        return levels.to_levelno(level if isinstance(level, str) else method_name)
    except (ValueError, KeyError):
        return logging.INFO


def _logger_name(
    event_dict: EventDict, logger: Any, record: Optional[logging.LogRecord]
) -> Optional[str]:
    """``add_logger_name``'s key, else the wrapped logger's name, else the stdlib record's."""
    name = event_dict.get("logger")
    if isinstance(name, str):
        return name
    if record is not None:
        return record.name
    name = getattr(logger, "name", None)
    return name if isinstance(name, str) else None


def _message(event_dict: EventDict) -> tuple[str, Any, str]:
    """(template, params, formatted). ``positional_args`` come from ``structlog.stdlib``."""
    event = event_dict.get("event")
    if event is None:
        message = ""
    elif isinstance(event, str):
        message = event
    else:
        message = safe_str(event)
    args = event_dict.get("positional_args")
    if not args:
        return message, None, message
    fmt_args = args[0] if len(args) == 1 and isinstance(args[0], Mapping) else args
    try:
        formatted = message % fmt_args
    except Exception:
        formatted = message
    return message, args, formatted


def _exception(exc_info: Any) -> Optional[BaseException]:
    """An ``exc_info`` value as structlog and logging accept it → the exception, or None."""
    if not exc_info:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        value = exc_info[1] if len(exc_info) == 3 else None
        return value if isinstance(value, BaseException) else None
    return sys.exc_info()[1]


def _describes(rendered: Any, exc: BaseException) -> bool:
    """Is ``rendered`` (``format_exc_info`` text, ``dict_tracebacks`` list) about ``exc``?"""
    name = type(exc).__name__
    if isinstance(rendered, str):
        return name in rendered
    if isinstance(rendered, list):
        return any(isinstance(item, dict) and item.get("exc_type") == name for item in rendered)
    return False


def _process_name() -> str:
    """As ``LogRecord.processName``: only ask multiprocessing if the app imported it."""
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        try:
            name: str = mp.current_process().name
            return name
        except Exception:
            pass
    return "MainProcess"


def _structlog_call_frame() -> Optional[FrameType]:
    """The frame that runs structlog's processor loop and then calls the wrapped logger.

    structlog's ``_proxy_to_logger`` calls ``_process_event`` (the loop that calls us, maybe
    through a wrapping processor) and then the stdlib logger: while that frame is on the stack,
    a record from that logger belongs to this call (see :mod:`sentry_log_handler.dedupe`).
    """
    frame: Optional[FrameType] = sys._getframe(3)  # skip this function, _take and __call__
    for _ in range(_MAX_WRAPPER_DEPTH):
        if frame is None:
            return None
        if frame.f_code.co_name == "_process_event":
            return frame.f_back
        frame = frame.f_back
    return None


def _structlog_frame_skip(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.partition(".")[0] in _SKIP_ROOTS
