"""Per-thread / per-asyncio-task breadcrumb buffers.

Breadcrumbs are the lower-level records that preceded an event. They must come from the same
flow of control as the event: the same thread, or the same asyncio task — never from another
request served concurrently. A ``ContextVar`` alone is not enough, because a task copies its
creator's context and would share the creator's buffer object; each buffer therefore records
its owner (task or thread) and a mismatch starts a fresh buffer.
"""

from __future__ import annotations

import threading
from asyncio import current_task
from asyncio.events import _get_running_loop
from collections import deque
from contextvars import ContextVar
from typing import Any, Optional

__all__ = ["BreadcrumbBuffer"]

_Buffers = dict[int, "deque[dict[str, Any]]"]
_state: ContextVar[Optional[tuple[int, _Buffers]]] = ContextVar(
    "sentry_log_handler_breadcrumbs", default=None
)


def _owner() -> int:
    loop = _get_running_loop()
    if loop is not None:
        task = current_task(loop)
        if task is not None:
            return id(task)
    return threading.get_ident()


class BreadcrumbBuffer:
    """Breadcrumbs of one client, kept separately for each thread and asyncio task."""

    def __init__(self, max_breadcrumbs: int) -> None:
        self.max_breadcrumbs = max_breadcrumbs

    def _buffers(self) -> _Buffers:
        owner = _owner()
        state = _state.get()
        if state is None or state[0] != owner:
            state = (owner, {})
            _state.set(state)
        return state[1]

    def add(self, crumb: dict[str, Any]) -> None:
        if self.max_breadcrumbs <= 0:
            return
        buffers = self._buffers()
        buffer = buffers.get(id(self))
        if buffer is None:
            buffer = buffers[id(self)] = deque(maxlen=self.max_breadcrumbs)
        buffer.append(crumb)

    def take(self) -> Optional[list[dict[str, Any]]]:
        """The current flow's breadcrumbs, oldest first; the buffer starts empty again."""
        state = _state.get()
        if state is None or state[0] != _owner():
            return None
        buffer = state[1].pop(id(self), None)
        return list(buffer) if buffer else None

    def clear(self) -> None:
        state = _state.get()
        if state is not None and state[0] == _owner():
            state[1].pop(id(self), None)
