"""A bounded queue drained by one daemon thread: the caller side is a few lock operations.

Modelled on ``logging.handlers.QueueListener`` (cheap caller, work on the listener) and on
OpenTelemetry's batch processor (explicit ``flush``/``close`` contracts, fork re-init):

* ``submit`` never blocks and never raises: when the queue is full by count or by bytes the
  item is dropped and ``on_drop`` is told, so the drop can be counted and reported.
* ``flush(timeout)`` waits until everything submitted before the call has been processed and
  says whether all of it succeeded.
* ``close(timeout)`` flushes, then stops the thread; it is idempotent.
* after ``os.fork()`` the child starts with an empty queue, fresh locks and no thread (one is
  started on the first submit); nothing the parent had queued is processed twice.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from typing import Any, Callable, Generic, Optional, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")

_STOP = object()


class _Marker:
    """A flush request travelling through the queue behind the items it waits for."""

    __slots__ = ("done", "failures_before", "ok")

    def __init__(self, failures_before: int) -> None:
        self.done = threading.Event()
        self.failures_before = failures_before
        self.ok = True


class Worker(Generic[T]):
    """Runs ``process(item) -> bool`` for each submitted item on one background thread."""

    def __init__(
        self,
        process: Callable[[T], bool],
        *,
        max_items: int,
        max_bytes: int,
        on_drop: Callable[[T], None],
        on_idle: Optional[Callable[[], Optional[float]]] = None,
        on_error: Callable[[BaseException], None],
        name: str = "sentry-log-handler",
    ) -> None:
        self._process = process
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._on_drop = on_drop
        self._on_idle = on_idle
        self._on_error = on_error
        self._name = name
        self._reset()
        _live_workers.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._count = 0
        self._bytes = 0
        self._thread: Optional[threading.Thread] = None
        self._thread_ident: Optional[int] = None
        self._closed = False
        self._pid = os.getpid()
        self._failures = 0

    # -- caller side -------------------------------------------------------------------

    def submit(self, item: T, size: int) -> bool:
        """Queue ``item`` (``size``: its estimated bytes). Never blocks; False when dropped."""
        with self._lock:
            if (
                self._closed
                or self._count >= self._max_items
                or self._bytes + size > self._max_bytes
            ):
                accepted = False
            else:
                self._count += 1
                self._bytes += size
                accepted = True
                if self._thread is None:
                    self._start()
        if not accepted:
            self._on_drop(item)
            return False
        self._queue.put((item, size))
        return True

    def start(self) -> None:
        """Start the thread now (normally the first submit does) so idle duties run."""
        with self._lock:
            if self._thread is None and not self._closed:
                self._start()

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread = thread
        thread.start()
        self._thread_ident = thread.ident

    def is_worker_thread(self) -> bool:
        return threading.get_ident() == self._thread_ident

    @property
    def pending(self) -> int:
        """Items submitted and not yet processed (including the one in progress)."""
        return self._count

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for everything submitted so far; True when all of it was processed with success.

        Called from the worker thread itself (e.g. from ``before_send``) it cannot wait for
        itself, so it returns whether the queue is empty.
        """
        if self.is_worker_thread():
            return self._count == 0
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return self._count == 0
            marker = _Marker(self._failures)
        self._queue.put((marker, 0))
        if not marker.done.wait(timeout):
            return False
        return marker.ok

    def close(self, timeout: Optional[float] = None) -> bool:
        """Flush within ``timeout``, then stop the thread. Idempotent; True if all was sent."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return self._count == 0
            self._closed = True
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return self._count == 0
        self._queue.put((_STOP, 0))
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        thread.join(remaining)
        return self._count == 0 and not thread.is_alive()

    # -- worker side -------------------------------------------------------------------

    def drain(self, handle: Callable[[T], None]) -> int:
        """Take every item still queued and pass it to ``handle`` on the calling thread.

        Used at shutdown, once the worker had its ``shutdown_timeout``: what is left is handed
        to the caller (to spool it) instead of dying with the daemon thread. Returns the count.

        The thread may still be busy with one item (a slow answer), so a stop request taken
        here is put back, or the thread would wait for a next item forever once it is done;
        a flush waiting on a marker taken here is told that its items were not delivered.
        """
        taken = 0
        stop_taken = False
        while True:
            try:
                item, size = self._queue.get_nowait()
            except queue.Empty:
                if stop_taken:
                    self._queue.put((_STOP, 0))
                return taken
            if item is _STOP:
                stop_taken = True
                continue
            if isinstance(item, _Marker):
                item.ok = False
                item.done.set()
                continue
            try:
                handle(item)
            except BaseException as exc:
                self._safe_error(exc)
            with self._lock:
                self._count -= 1
                self._bytes -= size
            taken += 1

    def _run(self) -> None:
        wait = self._idle()
        while True:
            try:
                item, size = (
                    self._queue.get() if wait is None else self._queue.get(timeout=wait)
                )
            except queue.Empty:
                wait = self._idle()
                continue
            if item is _STOP:
                self._idle()
                return
            if isinstance(item, _Marker):
                wait = self._idle()
                item.ok = self._failures == item.failures_before
                item.done.set()
                continue
            ok = False
            try:
                ok = self._process(item)
            except BaseException as exc:  # the thread must survive anything
                self._safe_error(exc)
            finally:
                with self._lock:
                    self._count -= 1
                    self._bytes -= size
                    if not ok:
                        self._failures += 1
            if self._queue.empty():
                wait = self._idle()

    def _idle(self) -> Optional[float]:
        """Run periodic duties; returns how long the thread may sleep before the next ones."""
        if self._on_idle is None:
            return None
        try:
            return self._on_idle()
        except BaseException as exc:
            self._safe_error(exc)
            return 1.0

    def _safe_error(self, exc: BaseException) -> None:
        try:
            self._on_error(exc)
        except BaseException:
            pass

    # -- fork --------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child inherits a copy of the queue and maybe a held lock, but not the thread."""
        self._reset()


_live_workers: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for worker in list(_live_workers):
        worker._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
