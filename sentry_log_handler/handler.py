"""``SentryHandler``: the ``logging`` front door.

``emit`` runs on the application's thread, so it only takes what must be taken at the moment
of the call (see :class:`~sentry_log_handler.event.Capture`) and hands it to the client's
worker. It never raises into the application, never waits on the network, and never turns the
library's own records (or those of urllib3/requests, or any record logged on the worker thread)
into events, so it cannot recurse.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Union

from . import dedupe, levels, stacktrace
from .client import Client
from .event import Capture
from .options import Options

__all__ = ["SentryHandler"]

# Attributes every LogRecord has; anything else in record.__dict__ came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None, None).__dict__
) | {"message", "asctime", "taskName"}

# Loggers whose records would loop back through the delivery path.
_IGNORED_EXACT = frozenset({"sentry_log_handler", "urllib3", "requests"})
_IGNORED_PREFIXES = tuple(f"{name}." for name in _IGNORED_EXACT)


class SentryHandler(logging.Handler):
    """Send records at or above ``level`` to Sentry; keep lower ones as breadcrumbs.

    ``level`` is the *event* threshold (default ERROR). Records at or above
    ``breadcrumb_level`` (default INFO) but below ``level`` are kept as breadcrumbs for the
    next event from the same thread or asyncio task. Both ``logging.config.dictConfig``
    (``class`` plus keyword options; its ``level`` key sets the event threshold) and
    ``fileConfig`` (``args=(dsn, level)``) can build it.

    Without a DSN (none given, ``SENTRY_DSN`` unset) the handler is a no-op.
    Pass ``client=`` to share one pipeline with other handlers or a ``SentryProcessor``;
    otherwise the handler owns a client built from the keyword options (see
    :class:`~sentry_log_handler.options.Options` for them all).
    """

    def __init__(
        self,
        dsn: Optional[str] = None,
        level: Union[int, str] = logging.ERROR,
        *,
        breadcrumb_level: Union[int, str, None] = logging.INFO,
        client: Optional[Client] = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if client is not None:
            if dsn is not None or options:
                raise TypeError("pass either client= or DSN/options, not both")
            self.client = client
            self._owns_client = False
        else:
            self.client = Client(Options(dsn, **options))
            self._owns_client = True
        self.breadcrumb_level: Optional[int] = (
            None if breadcrumb_level is None else levels.to_levelno(breadcrumb_level)
        )
        self.event_level = logging.ERROR
        self.setLevel(level)

    def setLevel(self, level: Union[int, str]) -> None:
        """Set the *event* threshold; the handler's own level also admits breadcrumbs."""
        self.event_level = levels.to_levelno(level)
        floor = self.event_level
        if self.breadcrumb_level is not None and self.client.options.max_breadcrumbs > 0:
            floor = min(floor, self.breadcrumb_level)
        self.level = floor

    def emit(self, record: logging.LogRecord) -> None:
        try:
            name = record.name
            if name in _IGNORED_EXACT or name.startswith(_IGNORED_PREFIXES):
                return
            client = self.client
            if not client.enabled or client.is_worker_thread() or dedupe.is_captured(record):
                return
            if record.levelno >= self.event_level:
                client.capture(self._capture(record))
            else:
                client.breadcrumbs.add(_breadcrumb(record))
            # A ProcessorFormatter running SentryProcessor on a copy of this record later
            # must not report it a second time.
            dedupe.mark_record(record)
        except RecursionError:
            raise
        except Exception as exc:
            self.client.errors.report_exception("SentryHandler.emit", exc)

    def _capture(self, record: logging.LogRecord) -> Capture:
        """The caller-thread snapshot: everything else happens on the worker."""
        tags = user = fingerprint = extra = None
        attrs = record.__dict__
        keys = attrs.keys() - _STANDARD_ATTRS
        if keys:
            extra = {}
            for key in keys:
                value = attrs[key]
                if key == "tags":
                    tags = value
                elif key == "user_id":
                    user = dict(user or {}, id=value if isinstance(value, str) else str(value))
                elif key == "user" and isinstance(value, dict):
                    user = {**value, **(user or {})}
                elif key == "fingerprint":
                    fingerprint = value
                else:
                    extra[key] = value
        exc_info = record.exc_info
        stack = None
        if record.stack_info:
            stack = stacktrace.capture_stack(skip=stacktrace.logging_frame_skip)
        return Capture(
            record.msg if isinstance(record.msg, str) else str(record.msg),
            level=levels.from_levelno(record.levelno),
            params=record.args,
            formatted=_message(record),
            logger=record.name,
            timestamp=record.created,
            tags=tags,
            user=user,
            fingerprint=fingerprint,
            extra=extra,
            exc=exc_info[1] if exc_info else None,
            stack=stack,
            breadcrumbs=self.client.breadcrumbs.take(),
            mechanism="logging",
            thread_id=record.thread,
            thread_name=record.threadName,
            process_id=record.process,
            process_name=record.processName,
        )

    def flush(self, timeout: Optional[float] = None) -> bool:  # type: ignore[override]
        """Wait for queued events; ``None`` waits at most ``shutdown_timeout``.

        ``logging.shutdown()`` calls ``flush()`` with no argument at exit, which must not hang
        on an unreachable endpoint, hence the bounded default.
        """
        if timeout is None:
            timeout = self.client.options.shutdown_timeout
        return self.client.flush(timeout)

    def close(self) -> None:
        """Flush (bounded by ``shutdown_timeout``) and stop the worker if this handler owns it."""
        try:
            if self._owns_client:
                self.client.close()
        finally:
            super().close()

    def __repr__(self) -> str:
        return (
            f"<SentryHandler {logging.getLevelName(self.event_level)}"
            f" dsn={self.client.options.dsn!s}>"
        )


def _breadcrumb(record: logging.LogRecord) -> dict[str, Any]:
    attrs = record.__dict__
    crumb: dict[str, Any] = {
        "timestamp": record.created,
        "type": "log",
        "category": record.name,
        "level": levels.from_levelno(record.levelno),
        "message": _message(record),
    }
    keys = attrs.keys() - _STANDARD_ATTRS
    if keys:
        crumb["data"] = {key: attrs[key] for key in keys}
    return crumb


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, or the template and raw arguments when formatting fails.

    A bad format string is the application's bug; it should arrive in Sentry, not vanish.
    """
    try:
        return record.getMessage()
    except Exception:
        try:
            return f"{record.msg} (arguments: {record.args!r})"
        except Exception:
            return str(record.msg)
