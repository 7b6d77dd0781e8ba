"""A bounded on-disk store for envelopes that could not be delivered.

When Sentry is unreachable, an error report is most valuable exactly then, so the
worker writes the envelope here and re-sends it later (also from a later process).
The spool must therefore survive ``kill -9`` and power loss at any instant, be shared
safely by several processes (gunicorn workers pointed at one directory), never grow
without bound, and never send a half-written or already-delivered file.

How each property is obtained (all with plain POSIX file operations, no lock files):

* **Atomic writes.** An envelope is written to ``.tmp-<pid>-<rand>``, fsync'ed, then
  ``os.replace``-d to ``<time_ns>-<pid>-<rand>.envelope``. Only names ending in
  ``.envelope`` are ever claimed, so a write interrupted at any point leaves at most a
  ``.tmp-`` file, which :meth:`Spool.recover` deletes. Names sort by creation time and
  carry no DSN, key or host.
* **Exclusive claims across processes.** :meth:`Spool.claim` renames the oldest
  envelope to ``<name>.claimed-<pid>-<rand>``. ``rename`` is atomic: when two processes
  race for one file, exactly one rename succeeds and the other gets
  ``FileNotFoundError`` and moves on to the next file.
* **Crash recovery.** A claim whose process is gone (``os.kill(pid, 0)`` says so) or
  that is older than the lease (default 5 min; the claim time is the file's mtime,
  set when claiming) is renamed back by :meth:`Spool.recover`, which the worker calls
  at start-up.
* **Bounded.** Before each write, the oldest pending envelopes are deleted until the
  new one fits ``max_files`` and ``max_bytes``; each deletion is reported through
  ``on_drop`` (the worker counts them as ``cache_overflow``). Only pending
  ``.envelope`` files count: claimed ones are in flight and leave the directory or
  come back soon. Two processes storing at the same instant may overshoot a bound by
  one file until the next store.
* **Private.** The directory is created 0700 and files are created 0600 by ``os.open``
  with ``O_EXCL`` (no umask window, no following a planted symlink). An existing
  directory is tightened to 0700 only if we own it and it holds nothing but spool
  files: chmod-ing a directory someone pointed us at by mistake (their home, say)
  would be a nasty surprise. Use a dedicated directory.

Delivery guarantee: a file is deleted only after a 2xx (:meth:`Claimed.done`), so
nothing is lost by a crash; the price is a window between the 2xx and the ``unlink``
in which a crash makes the next process send the envelope again. That window cannot
be closed on the client without server-side deduplication; Sentry discards an event
whose ``event_id`` it already stored, so duplicates of error events are harmless
(Sentry-Logs items carry no such id and may appear twice). Claims are also re-sent
after the lease expires, so a sender must finish well within ``claim_lease``.

Errors: :meth:`Spool.store` never raises for I/O errors (disk full, permissions,
directory removed): it returns False. Every envelope that does not end up on disk,
for whatever reason, is reported through ``on_drop``, so the caller never has to
count a failed ``store`` itself. The constructor does raise when the directory cannot
be created: that is a configuration error and should be seen at start-up.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import threading
import time
from typing import Callable, NamedTuple, Optional, Union

__all__ = ["Claimed", "Recovery", "Spool"]

PathLike = Union[str, "os.PathLike[str]"]

_SUFFIX = ".envelope"
_PENDING_RE = re.compile(r"^\d{20}-\d+-[0-9a-f]{16}\.envelope$")
_CLAIMED_RE = re.compile(
    r"^(?P<name>\d{20}-\d+-[0-9a-f]{16}\.envelope)\.claimed-(?P<pid>\d+)-[0-9a-f]{16}$"
)
_TMP_RE = re.compile(r"^\.tmp-(?P<pid>\d+)-[0-9a-f]{16}$")

# Claims held by THIS process, by claimed file path. Lets recover() tell our own live
# claims from stale ones left by an earlier process that happened to have our pid
# (common in containers, where the app is pid 1 on every start).
_LIVE_CLAIMS: set[str] = set()
_LIVE_LOCK = threading.Lock()

_O_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _rand() -> str:
    return secrets.token_hex(8)


def _pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (True when unsure: the lease then decides)."""
    if os.name == "nt":
        # On Windows os.kill(pid, 0) TERMINATES the process; rely on the lease instead.
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: exists but belongs to someone else
        return True
    return True


def _is_spool_name(name: str) -> bool:
    return bool(_PENDING_RE.match(name) or _CLAIMED_RE.match(name) or _TMP_RE.match(name))


class Recovery(NamedTuple):
    """What :meth:`Spool.recover` cleaned up."""

    released: int  # stale claims renamed back to pending
    removed_tmp: int  # leftovers of interrupted writes
    removed_empty: int  # zero-length envelopes


class Claimed:
    """One envelope this process has exclusively claimed for re-sending.

    Finish it with exactly one of :meth:`done` (delivered: delete), :meth:`release`
    (not delivered: back to the queue, keeping its place as the oldest) or
    :meth:`discard` (unusable: delete). Further calls are no-ops returning False.
    """

    __slots__ = ("_finished", "data", "name", "path")

    def __init__(self, directory: str, name: str, claimed_name: str, data: bytes) -> None:
        self.data = data
        self.name = name  # the pending name, restored by release()
        self.path = os.path.join(directory, claimed_name)
        self._finished = False

    def __repr__(self) -> str:
        return f"<Claimed {self.name} {len(self.data)} bytes>"

    def _finish(self) -> bool:
        if self._finished:
            return False
        self._finished = True
        with _LIVE_LOCK:
            _LIVE_CLAIMS.discard(self.path)
        return True

    def done(self) -> bool:
        """Delete after successful delivery. False if the file had already gone."""
        return self._finish() and self._unlink()

    def discard(self) -> bool:
        """Delete an unusable (truncated, corrupt, rejected) envelope."""
        return self._finish() and self._unlink()

    def release(self) -> bool:
        """Return the envelope to the spool; it will be the next one claimed.

        So a drain loop must stop at the first failed delivery, not claim again.
        """
        if not self._finish():
            return False
        try:
            os.rename(self.path, os.path.join(os.path.dirname(self.path), self.name))
        except OSError:
            return False
        return True

    def _unlink(self) -> bool:
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True


class Spool:
    """Bounded directory of undelivered envelopes; thread- and process-safe.

    ``on_drop(n)`` is called (outside the spool's lock; exceptions ignored) with the
    number of envelopes lost: the oldest ones evicted to make room, or the one being
    stored when it cannot be (larger than ``max_bytes``, or an I/O error).
    """

    def __init__(
        self,
        directory: PathLike,
        *,
        max_files: int = 100,
        max_bytes: int = 20 * 1024 * 1024,
        on_drop: Optional[Callable[[int], None]] = None,
        claim_lease: float = 300.0,
        tmp_max_age: float = 60.0,
    ) -> None:
        for label, value in (("max_files", max_files), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Spool {label} must be a positive integer, got {value!r}")
        for label, fvalue in (("claim_lease", claim_lease), ("tmp_max_age", tmp_max_age)):
            if not isinstance(fvalue, (int, float)) or not fvalue > 0:
                raise ValueError(f"Spool {label} must be a positive number, got {fvalue!r}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.claim_lease = float(claim_lease)
        self.tmp_max_age = float(tmp_max_age)
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._last_ns = 0
        #: The last I/O error swallowed by store/claim, for debug output.
        self.last_error: Optional[OSError] = None
        #: Whether the directory was 0700 (owner-only) after start-up.
        self.private = self._prepare_directory()

    def __repr__(self) -> str:
        return f"<Spool {self.directory!r} max_files={self.max_files} max_bytes={self.max_bytes}>"

    def after_fork(self) -> None:
        """Fresh lock in a forked child (the parent may have held it at fork time)."""
        self._lock = threading.Lock()

    # -- directory -------------------------------------------------------------------

    def _prepare_directory(self) -> bool:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        st = os.stat(self.directory)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(f"spool path is not a directory: {self.directory}")
        mode = stat.S_IMODE(st.st_mode)
        if os.name == "nt" or mode == 0o700:
            return True
        owned = hasattr(os, "getuid") and st.st_uid == os.getuid()
        if owned and all(_is_spool_name(n) for n in os.listdir(self.directory)):
            os.chmod(self.directory, 0o700)
            return True
        return False

    def _scan_pending(self) -> list[tuple[str, int]]:
        """Pending envelopes as (name, size), oldest first."""
        found: list[tuple[str, int]] = []
        with os.scandir(self.directory) as it:
            for entry in it:
                if not _PENDING_RE.match(entry.name):
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # claimed by another process meanwhile
                    continue
                found.append((entry.name, size))
        found.sort()
        return found

    def _new_name(self) -> str:
        # Strictly increasing within the process even if the wall clock steps back,
        # so our own envelopes are re-sent in the order they were stored.
        now = max(time.time_ns(), self._last_ns + 1)
        self._last_ns = now
        return f"{now:020d}-{os.getpid()}-{_rand()}{_SUFFIX}"

    def _fsync_directory(self) -> None:
        """Make the rename itself durable (best effort; not possible on Windows)."""
        if os.name == "nt":
            return
        with contextlib.suppress(OSError):
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _notify(self, dropped: int) -> None:
        if dropped and self._on_drop is not None:
            with contextlib.suppress(Exception):
                self._on_drop(dropped)

    # -- store -----------------------------------------------------------------------

    def store(self, envelope: bytes) -> bool:
        """Persist ``envelope`` exactly as given; True when it is safely on disk.

        The caller strips ``sent_at`` first: the header must describe the later send.
        An empty envelope is not stored and not counted (nothing was lost).
        """
        data = bytes(envelope)
        if not data:
            return False
        if len(data) > self.max_bytes:
            self._notify(1)
            return False
        dropped = 0
        stored = False
        with self._lock:
            try:
                dropped = self._make_room(len(data))
                self._write(data)
                stored = True
            except OSError as exc:
                self.last_error = exc
        self._notify(dropped + (0 if stored else 1))
        return stored

    def _make_room(self, size: int) -> int:
        """Evict oldest pending envelopes until one more of ``size`` fits. Lock held."""
        try:
            pending = self._scan_pending()
        except FileNotFoundError:  # directory removed under us: recreate it
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            pending = []
        count = len(pending)
        total = sum(s for _, s in pending)
        dropped = 0
        for name, file_size in pending:
            if count + 1 <= self.max_files and total + size <= self.max_bytes:
                break
            try:
                os.unlink(os.path.join(self.directory, name))
                dropped += 1
            except FileNotFoundError:
                pass  # claimed by another process: it is in flight, not lost
            count -= 1
            total -= file_size
        return dropped

    def _write(self, data: bytes) -> None:
        tmp = os.path.join(self.directory, f".tmp-{os.getpid()}-{_rand()}")
        fd = os.open(tmp, _O_FLAGS, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(self.directory, self._new_name()))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_directory()

    # -- claim -----------------------------------------------------------------------

    def claim(self) -> Optional[Claimed]:
        """Exclusively take the oldest pending envelope, or None when there is none.

        Zero-length files (from a crash on a filesystem that lost the data but kept
        the rename) are deleted on the way. Never raises for I/O errors.
        """
        with self._lock:
            try:
                pending = self._scan_pending()
            except OSError as exc:
                self.last_error = exc
                return None
            pid = os.getpid()
            for name, _size in pending:
                claimed_name = f"{name}.claimed-{pid}-{_rand()}"
                src = os.path.join(self.directory, name)
                dst = os.path.join(self.directory, claimed_name)
                try:
                    os.rename(src, dst)
                except FileNotFoundError:
                    continue  # another process won this one
                except OSError as exc:
                    self.last_error = exc
                    continue
                with _LIVE_LOCK:
                    _LIVE_CLAIMS.add(dst)
                # The lease runs from the claim, not from the store.
                with contextlib.suppress(OSError):
                    os.utime(dst)
                claimed = Claimed(self.directory, name, claimed_name, b"")
                try:
                    with open(dst, "rb") as fh:
                        claimed.data = fh.read()
                except OSError as exc:
                    self.last_error = exc
                    claimed.release()  # leave it for a later attempt or an operator
                    continue
                if not claimed.data:
                    claimed.discard()
                    continue
                return claimed
        return None

    # -- recovery --------------------------------------------------------------------

    def recover(self, now: Optional[float] = None) -> Recovery:
        """Undo what crashed processes left behind; call at start-up (and at will).

        * claims whose pid is dead, or older than ``claim_lease``, go back to pending;
        * ``.tmp-`` files of dead processes, or older than ``tmp_max_age``, are deleted
          (they are incomplete by construction: a finished write is renamed away);
        * zero-length envelopes are deleted.

        ``now`` is epoch seconds (file times are wall-clock). Never raises.
        """
        wall = time.time() if now is None else now
        me = os.getpid()
        released = removed_tmp = removed_empty = 0
        with self._lock:
            try:
                with os.scandir(self.directory) as it:
                    entries = list(it)
            except OSError as exc:
                self.last_error = exc
                return Recovery(0, 0, 0)
            for entry in entries:
                name = entry.name
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                age = wall - st.st_mtime
                claimed = _CLAIMED_RE.match(name)
                if claimed:
                    pid = int(claimed.group("pid"))
                    if pid == me:
                        with _LIVE_LOCK:
                            dead = entry.path not in _LIVE_CLAIMS
                    else:
                        dead = not _pid_alive(pid)
                    if dead or age > self.claim_lease:
                        target = os.path.join(self.directory, claimed.group("name"))
                        try:
                            os.rename(entry.path, target)
                            released += 1
                        except OSError:
                            pass
                        with _LIVE_LOCK:
                            _LIVE_CLAIMS.discard(entry.path)
                    continue
                tmp = _TMP_RE.match(name)
                if tmp:
                    pid = int(tmp.group("pid"))
                    if age > self.tmp_max_age or (pid != me and not _pid_alive(pid)):
                        try:
                            os.unlink(entry.path)
                            removed_tmp += 1
                        except OSError:
                            pass
                    continue
                if _PENDING_RE.match(name) and st.st_size == 0:
                    try:
                        os.unlink(entry.path)
                        removed_empty += 1
                    except OSError:
                        pass
        return Recovery(released, removed_tmp, removed_empty)

    # -- introspection ---------------------------------------------------------------

    def pending_count(self) -> int:
        """Number of envelopes waiting to be (re-)sent; 0 if the directory is unreadable."""
        try:
            return len(self._scan_pending())
        except OSError:
            return 0

    def pending_bytes(self) -> int:
        """Total size of the waiting envelopes."""
        try:
            return sum(size for _, size in self._scan_pending())
        except OSError:
            return 0

    def __len__(self) -> int:
        return self.pending_count()

    def __bool__(self) -> bool:
        # Without this, an empty spool would be falsy and `if spool:` checks for
        # "is a spool configured" would silently fail.
        return True
