"""Exactly one event per call when structlog and stdlib logging are chained.

With the ``structlog.stdlib`` bridge a call passes through ``SentryProcessor`` and then reaches
``logging``, where a ``SentryHandler`` may be attached too. The processor marks what it took
here, per thread (the bridge hands the record to logging synchronously, on the same thread),
and the handler skips a record that belongs to that call. What reaches logging depends on the
last processor of the chain, so there is one test per bridge:

* ``ProcessorFormatter.wrap_for_formatter``: ``record.msg`` IS the event dict.
* a renderer (``JSONRenderer``, ``ConsoleRenderer``...) in front of ``LoggerFactory``:
  ``record.msg`` is a new string; the record is recognised as coming from the stdlib logger
  structlog wrapped, emitted while that very structlog call is still running: the frame that
  runs structlog's processor loop (noted by the processor) is still on the stack.
* ``render_to_log_kwargs``: the frame test above applies; without a frame (the processor was
  not called from structlog's loop) ``record.msg`` IS the ``event`` string, remembered at mark
  time because that function pops ``"event"`` from the dict. That claim covers one record.

A call the processor lets pass (below its levels, say) calls :func:`release`, so that an
older call's frame claim cannot cover it (a new frame may reuse a finished one's address).
* ``SentryProcessor`` inside a ``ProcessorFormatter`` chain: the formatter works on a copy of
  the record (``event_dict["_record"]``); a copy shares the original's ``created`` float
  object, so the original is recognised by that identity (and its logger name).

Identity, not equality: two genuinely separate calls with equal text are both reported. Users
do not have to remember to configure one of the two front doors away.

The other direction (a ``SentryHandler`` that already sent a record, then a
``ProcessorFormatter`` running ``SentryProcessor`` on it) works when the handler calls
:func:`mark_record` for what it captured; :func:`seen_record` answers the processor.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import CodeType, FrameType
from typing import Any, Optional

__all__ = ["is_captured", "mark_captured", "mark_record", "release", "seen_record"]


class _Mark:
    """What one processor call took (the last call on this thread)."""

    __slots__ = ("code", "event", "event_dict", "frame_id", "logger_name", "record")

    def __init__(
        self,
        event_dict: MutableMapping[str, Any],
        logger_name: Optional[str],
        frame: Optional[FrameType],
    ) -> None:
        self.event_dict = event_dict
        self.event: Any = event_dict.get("event")
        self.logger_name = logger_name
        # Not the frame itself: a finished frame would keep its locals and every caller's
        # frame alive until the next call on this thread. Its id and code identify it while
        # it runs; a later frame at the same address running the same code is a later
        # structlog call, and the processor either marks it afresh or calls release().
        self.frame_id = id(frame) if frame is not None else None
        self.code: Optional[CodeType] = frame.f_code if frame is not None else None
        record = event_dict.get("_record")
        self.record: Optional[logging.LogRecord] = (
            record if isinstance(record, logging.LogRecord) else None
        )


class _State(threading.local):
    """Per-thread marks. Class defaults, so that reading an unset one never raises (an
    ``AttributeError`` caught inside ``getattr`` costs more than all the rest of a check)."""

    last: Optional[_Mark] = None
    # (created float object, logger name) of the record a SentryHandler last took: enough to
    # recognise copies of it, without keeping the record (and its traceback's frames) alive.
    handled: Optional[tuple[float, str]] = None


_local = _State()


def mark_captured(
    event_dict: MutableMapping[str, Any],
    *,
    logger_name: Optional[str] = None,
    frame: Optional[FrameType] = None,
) -> None:
    """Remember the call the processor just handled (one per thread, replaced each call).

    ``logger_name``: the name of the stdlib logger structlog will hand the call to, if any.
    ``frame``: a frame that stays on the stack exactly as long as that structlog call runs
    (the caller of the processor loop); without it only the identity tests apply.
    """
    _local.last = _Mark(event_dict, logger_name, frame)


def release(event_dict: MutableMapping[str, Any]) -> None:
    """The processor let a call pass: an older call's claim must not cover its records.

    The frame and ``event`` string claims are dropped (a new frame may reuse a finished one's
    address and code; the string may be the same constant); the dict and record identity
    claims stay, they are exact. A mark of ``event_dict`` itself is kept whole: another
    ``SentryProcessor`` earlier in the same chain may have taken this very call.
    """
    mark = _local.last
    if mark is not None and mark.event_dict is not event_dict:
        mark.frame_id = mark.code = mark.event = None


def is_captured(record: logging.LogRecord) -> bool:
    """True when ``record`` carries a call that ``SentryProcessor`` already handled."""
    mark = _local.last
    if mark is None:
        return False
    msg = record.msg
    if msg is mark.event_dict:
        mark.event = None  # the call's record arrived: its string can no longer stand for it
        return True
    copy = mark.record
    if copy is not None and _same_record(record, copy):
        return True
    name_matches = mark.logger_name is not None and record.name == mark.logger_name
    if mark.frame_id is not None:
        if _on_stack(mark.frame_id, mark.code):
            return name_matches
        # That structlog call is over: nothing it logs can arrive any more (checked once).
        mark.frame_id = mark.code = mark.event = None
        return False
    if name_matches and isinstance(msg, str) and msg is mark.event:
        # Without a frame, the string's identity is all there is; it stands for one record
        # only, so that a later plain call with the same constant string is reported.
        mark.event = None
        return True
    return False


def mark_record(record: logging.LogRecord) -> None:
    """Remember the record a ``SentryHandler`` just captured (one per thread)."""
    _local.handled = (record.created, record.name)


def seen_record(record: logging.LogRecord) -> bool:
    """True when ``record`` (a ``ProcessorFormatter`` copy, usually) was already captured.

    Either a ``SentryHandler`` took the original (:func:`mark_record`), or the record comes
    from a structlog call whose event dict the processor already took in the main chain.
    """
    handled = _local.handled
    if handled is not None and record.created is handled[0] and record.name == handled[1]:
        return True
    mark = _local.last
    if mark is None:
        return False
    if record.msg is mark.event_dict:
        return True
    # The processor sits in both foreign_pre_chain and processors: the first one took it.
    return mark.record is not None and _same_record(record, mark.record)


def _same_record(a: logging.LogRecord, b: logging.LogRecord) -> bool:
    """The same record, or a copy of it (``makeLogRecord(r.__dict__)``, ``copy.copy``).

    A copy shares the original's ``created`` float object, and while a mark holds the record
    that object cannot be reused by another record. (``msg`` is no witness: ProcessorFormatter
    replaces the copy's ``msg`` with the rendered text.)
    """
    return a is b or (a.created is b.created and a.name == b.name)


def _on_stack(frame_id: int, code: Optional[CodeType]) -> bool:
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if id(frame) == frame_id and frame.f_code is code:
            return True
        frame = frame.f_back
    return False
