"""Spool: permissions, bounds, atomic writes, exclusive claims across processes, kill -9."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sentry_log_handler
from sentry_log_handler.spool import Claimed, Spool

POSIX = os.name == "posix"
posix_only = pytest.mark.skipif(not POSIX, reason="POSIX permissions and signals")


def envelope(i: int, size: int = 64) -> bytes:
    """A recognisable envelope: the event id encodes ``i``, the body is checkable."""
    body = (b"%08d" % i) * (size // 8 + 1)
    return b'{"event_id":"%032x"}\n' % i + body[:size] + b"\n"


def event_index(data: bytes) -> int:
    header = json.loads(data.split(b"\n", 1)[0])
    return int(header["event_id"], 16)


def check_envelope(data: bytes, size: int) -> int:
    """Assert ``data`` is exactly what envelope(i, size) wrote; return i."""
    i = event_index(data)
    assert data == envelope(i, size)
    return i


def files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        claimed = spool.claim()
        if claimed is None:
            return out
        out.append(claimed.data)
        assert claimed.done()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# -- construction and permissions ------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_files": 0},
        {"max_bytes": 0},
        {"max_files": True},
        {"max_bytes": 1.5},
        {"claim_lease": 0},
        {"tmp_max_age": -1},
    ],
)
def test_bad_bounds_rejected(spool_dir: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        Spool(spool_dir, **kwargs)
    assert next(iter(kwargs)) in str(info.value)


@posix_only
def test_directory_0700_and_files_0600_even_with_permissive_umask(spool_dir: Path) -> None:
    old = os.umask(0)
    try:
        spool = Spool(spool_dir)
        assert spool.store(envelope(1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(spool_dir).st_mode) == 0o700
    assert spool.private
    (name,) = files(spool_dir)
    assert stat.S_IMODE(os.stat(spool_dir / name).st_mode) == 0o600


@posix_only
def test_existing_spool_directory_is_tightened(spool_dir: Path) -> None:
    spool_dir.mkdir(mode=0o755)
    os.chmod(spool_dir, 0o755)
    Spool(spool_dir).store(envelope(1))
    spool = Spool(spool_dir)  # contains only spool files: still tightened
    assert spool.private
    assert stat.S_IMODE(os.stat(spool_dir).st_mode) == 0o700


@posix_only
def test_shared_directory_with_other_files_is_left_alone(spool_dir: Path) -> None:
    spool_dir.mkdir()
    os.chmod(spool_dir, 0o755)
    (spool_dir / "notes.txt").write_text("not ours")
    spool = Spool(spool_dir)
    assert not spool.private
    assert stat.S_IMODE(os.stat(spool_dir).st_mode) == 0o755
    assert spool.store(envelope(1))
    name = next(n for n in files(spool_dir) if n.endswith(".envelope"))
    assert stat.S_IMODE(os.stat(spool_dir / name).st_mode) == 0o600


def test_file_names_are_sortable_and_carry_no_secrets(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    for i in range(5):
        assert spool.store(envelope(i) + b"https://public:secret@example.com/1")
    names = files(spool_dir)
    assert len(names) == 5
    for name in names:
        stamp, pid, rand_ext = name.split("-")
        assert len(stamp) == 20 and stamp.isdigit()
        assert pid == str(os.getpid())
        assert rand_ext.endswith(".envelope")
        assert "secret" not in name and "example" not in name
    # Stored bytes are exactly what was given, and come back oldest first.
    assert [event_index(d) for d in drain(spool)] == [0, 1, 2, 3, 4]


def test_not_falsy_when_empty(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    assert len(spool) == 0
    assert spool


# -- bounds -----------------------------------------------------------------------------


def test_max_files_drops_oldest_first(spool_dir: Path) -> None:
    drops: list[int] = []
    spool = Spool(spool_dir, max_files=3, on_drop=drops.append)
    for i in range(7):
        assert spool.store(envelope(i))
    assert spool.pending_count() == 3 == len(spool)
    assert sum(drops) == 4
    assert [event_index(d) for d in drain(spool)] == [4, 5, 6]


def test_max_bytes_drops_oldest_until_it_fits(spool_dir: Path) -> None:
    drops: list[int] = []
    one = len(envelope(0, 1000))
    spool = Spool(spool_dir, max_bytes=3 * one + 10, on_drop=drops.append)
    for i in range(3):
        assert spool.store(envelope(i, 1000))
    assert drops == []
    assert spool.pending_bytes() == 3 * one
    big = envelope(3, 2000)  # needs room of two small ones
    assert spool.store(big)
    assert sum(drops) == 2
    assert spool.pending_bytes() == one + len(big)
    assert [event_index(d) for d in drain(spool)] == [2, 3]


def test_envelope_larger_than_max_bytes_is_not_stored(spool_dir: Path) -> None:
    drops: list[int] = []
    spool = Spool(spool_dir, max_bytes=100, on_drop=drops.append)
    assert spool.store(envelope(0, 10))
    assert not spool.store(envelope(1, 500))
    assert drops == [1]
    assert [event_index(d) for d in drain(spool)] == [0]  # nothing evicted for it


def test_empty_envelope_not_stored_and_not_counted(spool_dir: Path) -> None:
    drops: list[int] = []
    spool = Spool(spool_dir, on_drop=drops.append)
    assert not spool.store(b"")
    assert drops == [] and len(spool) == 0


def test_on_drop_exceptions_do_not_escape(spool_dir: Path) -> None:
    def boom(n: int) -> None:
        raise RuntimeError("callback bug")

    spool = Spool(spool_dir, max_files=1, on_drop=boom)
    assert spool.store(envelope(0))
    assert spool.store(envelope(1))
    assert not spool.store(b"x" * (spool.max_bytes + 1))


# -- I/O errors -------------------------------------------------------------------------


def test_store_survives_directory_replaced_by_file(spool_dir: Path) -> None:
    drops: list[int] = []
    spool = Spool(spool_dir, on_drop=drops.append)
    os.rmdir(spool_dir)
    spool_dir.write_text("oops")
    assert spool.store(envelope(0)) is False
    assert drops == [1]
    assert isinstance(spool.last_error, OSError)
    assert spool.claim() is None
    assert spool.pending_count() == 0
    assert spool.recover() == (0, 0, 0)


def test_store_recreates_a_removed_directory(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    os.rmdir(spool_dir)
    assert spool.store(envelope(0))
    assert [event_index(d) for d in drain(spool)] == [0]


def test_write_failure_leaves_no_temp_file(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drops: list[int] = []
    spool = Spool(spool_dir, on_drop=drops.append)
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_disk)
        assert spool.store(envelope(0)) is False
    assert os.fsync is real_fsync
    assert drops == [1]
    assert files(spool_dir) == []
    assert spool.store(envelope(1))


# -- claims -----------------------------------------------------------------------------


def test_claim_done_release_discard(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    for i in range(3):
        spool.store(envelope(i))
    first = spool.claim()
    assert isinstance(first, Claimed)
    assert event_index(first.data) == 0
    assert f".claimed-{os.getpid()}-" in first.path
    assert spool.pending_count() == 2  # claimed files are not pending
    assert first.release()
    assert not first.release() and not first.done()  # finished: further calls are no-ops
    again = spool.claim()
    assert again is not None and again.data == first.data  # released = oldest again
    assert again.done()
    second = spool.claim()
    assert second is not None and event_index(second.data) == 1
    assert second.discard()
    third = spool.claim()
    assert third is not None and event_index(third.data) == 2
    assert third.done()
    assert spool.claim() is None
    assert files(spool_dir) == []


def test_zero_length_files_are_skipped_and_deleted(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    empty = spool_dir / ("0" * 20 + "-1-" + "a" * 16 + ".envelope")
    empty.write_bytes(b"")
    spool.store(envelope(5))
    claimed = spool.claim()
    assert claimed is not None and event_index(claimed.data) == 5
    assert not empty.exists()


def test_temp_and_foreign_files_are_never_claimed(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    (spool_dir / f".tmp-{os.getpid()}-{'b' * 16}").write_bytes(envelope(9)[:10])
    (spool_dir / "random.envelope").write_bytes(envelope(8))
    (spool_dir / ".hidden.envelope").write_bytes(envelope(7))
    assert spool.claim() is None
    assert spool.pending_count() == 0


def test_threads_claiming_from_one_dir_never_share(spool_dir: Path) -> None:
    writer = Spool(spool_dir, max_files=1000)
    for i in range(200):
        writer.store(envelope(i))
    results: list[list[int]] = [[] for _ in range(4)]

    def work(index: int) -> None:
        spool = writer if index % 2 else Spool(spool_dir, max_files=1000)
        results[index] = [event_index(d) for d in drain(spool)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    combined = [i for r in results for i in r]
    assert sorted(combined) == list(range(200))


def _claim_worker(directory: str, start: Any, out: Any) -> None:
    """Child process: claim until the spool is empty; report the event indices seen."""
    spool = Spool(directory, max_files=10_000)
    start.wait()
    seen = []
    while True:
        claimed = spool.claim()
        if claimed is None:
            break
        seen.append(event_index(claimed.data))
        claimed.done()
    out.put(seen)


@pytest.mark.parametrize("method", ["spawn", "fork"] if POSIX else ["spawn"])
def test_processes_claiming_concurrently_never_get_the_same_file(
    spool_dir: Path, method: str
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} not available")
    n = 400
    writer = Spool(spool_dir, max_files=10_000)
    for i in range(n):
        assert writer.store(envelope(i))
    ctx: Any = multiprocessing.get_context(method)
    start = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_worker, args=(str(spool_dir), start, out)) for _ in range(3)]
    try:
        for p in procs:
            p.start()
        start.set()
        seen = [out.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():  # pragma: no cover - only on failure
                p.kill()
                p.join()
    sets = [set(s) for s in seen]
    assert all(len(s) == len(lst) for s, lst in zip(sets, seen))
    for a in range(len(sets)):
        for b in range(a + 1, len(sets)):
            assert not (sets[a] & sets[b])
    assert set().union(*sets) == set(range(n))
    assert files(spool_dir) == []


# -- recovery ---------------------------------------------------------------------------


def _claimed_name(spool_dir: Path, pid: int) -> tuple[str, str]:
    Spool(spool_dir).store(envelope(42))
    (pending,) = [n for n in files(spool_dir) if n.endswith(".envelope")]
    claimed = f"{pending}.claimed-{pid}-{'c' * 16}"
    os.rename(spool_dir / pending, spool_dir / claimed)
    return pending, claimed


@posix_only
def test_stale_claim_of_dead_process_is_recovered(spool_dir: Path) -> None:
    pending, _claimed = _claimed_name(spool_dir, dead_pid())
    spool = Spool(spool_dir)
    assert spool.claim() is None  # still claimed until recovered
    assert spool.recover().released == 1
    assert files(spool_dir) == [pending]
    got = spool.claim()
    assert got is not None and event_index(got.data) == 42


def test_claim_of_live_process_is_kept_until_the_lease_expires(spool_dir: Path) -> None:
    live = os.getppid()  # alive for the whole test
    pending, claimed = _claimed_name(spool_dir, live)
    os.utime(spool_dir / claimed)  # claimed "now"
    spool = Spool(spool_dir, claim_lease=300)
    assert spool.recover().released == 0
    assert files(spool_dir) == [claimed]
    assert spool.recover(now=time.time() + 301).released == 1
    assert files(spool_dir) == [pending]


def test_own_live_claim_kept_but_own_pid_leftover_recovered(spool_dir: Path) -> None:
    spool = Spool(spool_dir)
    spool.store(envelope(1))
    live = spool.claim()
    assert live is not None
    # A claim file with our pid that this process does not hold: left by an earlier
    # process that had the same pid (containers restart as pid 1).
    _, leftover = _claimed_name(spool_dir, os.getpid())
    result = spool.recover()
    assert result.released == 1
    assert os.path.exists(live.path)
    assert not (spool_dir / leftover).exists()
    assert live.done()


def test_recover_removes_old_or_orphaned_temp_files_and_empty_envelopes(spool_dir: Path) -> None:
    spool = Spool(spool_dir, tmp_max_age=60)
    fresh_own = spool_dir / f".tmp-{os.getpid()}-{'1' * 16}"
    old_own = spool_dir / f".tmp-{os.getpid()}-{'2' * 16}"
    empty = spool_dir / ("0" * 20 + "-1-" + "a" * 16 + ".envelope")
    for path in (fresh_own, old_own, empty):
        path.write_bytes(b"" if path is empty else b'{"event_id":')
    past = time.time() - 120
    os.utime(old_own, (past, past))
    paths = [fresh_own, old_own, empty]
    expected_tmp = 1
    if POSIX:
        orphan = spool_dir / f".tmp-{dead_pid()}-{'3' * 16}"
        orphan.write_bytes(b"partial")
        paths.append(orphan)
        expected_tmp = 2
    result = spool.recover()
    assert result.removed_tmp == expected_tmp
    assert result.removed_empty == 1
    assert [p.exists() for p in paths] == [True, False, False] + [False] * (len(paths) - 3)
    assert spool.claim() is None


_STORE_LOOP = r"""
import sys
from sentry_log_handler.spool import Spool

spool = Spool(sys.argv[1], max_files=100_000, max_bytes=10**12)
size = int(sys.argv[2])
i = 0
while True:
    body = (b"%08d" % i) * (size // 8 + 1)
    spool.store(b'{"event_id":"%032x"}\n' % i + body[:size] + b"\n")
    i += 1
"""


@pytest.fixture
def store_loop(spool_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    package_parent = os.path.dirname(os.path.dirname(sentry_log_handler.__file__))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    spool_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _STORE_LOOP, str(spool_dir), str(256 * 1024)], env=env
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@posix_only
def test_kill_9_mid_run_leaves_only_complete_envelopes(
    spool_dir: Path, store_loop: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 120  # liveness guard only, not an assertion on speed
    while sum(n.endswith(".envelope") for n in os.listdir(spool_dir)) < 20:
        assert store_loop.poll() is None, "store loop died"
        assert time.monotonic() < deadline, "store loop made no progress"
        time.sleep(0.01)
    os.kill(store_loop.pid, signal.SIGKILL)
    store_loop.wait()
    assert store_loop.returncode == -signal.SIGKILL

    # Whatever the kill interrupted, simulate the worst case too: a half-written temp file.
    (spool_dir / f".tmp-{store_loop.pid}-{'f' * 16}").write_bytes(b'{"event_id":"00')

    spool = Spool(spool_dir)
    result = spool.recover()
    assert result.removed_tmp >= 1
    assert not [n for n in os.listdir(spool_dir) if n.startswith(".tmp-")]
    seen = []
    while True:
        claimed = spool.claim()
        if claimed is None:
            break
        seen.append(check_envelope(claimed.data, 256 * 1024))
        claimed.done()
    # Every complete file is readable, in order, and none is missing in the middle.
    assert len(seen) >= 20
    assert seen == sorted(seen)
    assert seen == list(range(seen[0], seen[0] + len(seen)))
    assert os.listdir(spool_dir) == []
