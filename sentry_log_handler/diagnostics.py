"""Report the library's own failures on stderr: once per kind, never as a flood.

A logging handler must not raise into the application, and must not log its own problems
through logging (that would recurse). So internal errors are written straight to stderr, the
first of each kind in full and later ones only counted (shown with the next distinct report
and by ``Client.stats()``).
"""

from __future__ import annotations

import sys
import threading
from typing import Optional, TextIO

__all__ = ["ErrorReporter"]


class ErrorReporter:
    def __init__(self, stream: Optional[TextIO] = None, *, debug: bool = False) -> None:
        self._stream = stream
        self._debug = debug
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self.suppressed = 0

    def report(self, kind: str, message: str) -> None:
        with self._lock:
            first = kind not in self._seen
            if first:
                self._seen.add(kind)
            elif not self._debug:
                self.suppressed += 1
                return
        self.write(f"{message} (further reports of this kind are suppressed)" if first
                   and not self._debug else message)

    def report_exception(self, kind: str, exc: BaseException) -> None:
        self.report(kind, f"internal error in {kind}: {type(exc).__name__}: {_safe_str(exc)}")

    def write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(f"sentry-log-handler: {line}\n")
            stream.flush()
        except Exception:
            pass


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)[:500]
    except Exception:
        return "<unprintable>"
