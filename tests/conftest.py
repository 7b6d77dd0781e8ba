"""Shared fixtures: the in-process inbox (Relay-checked) and a real foxray server.

Fixtures of other areas live in their own modules; keep this file to the receivers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from relay_check import relay_problems

from sentry_log_handler.inbox import Inbox

_FOXRAY_START_TIMEOUT = 30.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "no_relay_check: do not run Relay's normalizer over the events the inbox received "
        "(for tests that send malformed events on purpose)",
    )


@pytest.fixture
def inbox(request: pytest.FixtureRequest) -> Iterator[Inbox]:
    """A started :class:`Inbox`; at teardown every event it got must pass Relay's normalizer."""
    box = Inbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()
    if request.node.get_closest_marker("no_relay_check") is not None:
        return
    failures = []
    for index, event in enumerate(box.events):
        problems = relay_problems(event)
        if problems:
            failures.append(
                f"event #{index} ({event.get('event_id')}):\n    "
                + "\n    ".join(problems)
                + "\n"
                + json.dumps(event, indent=2, default=repr, ensure_ascii=False)[:5000]
            )
    if failures:
        pytest.fail(
            "Relay's normalizer rejects fields of events the inbox received "
            "(mark the test no_relay_check if that is intended):\n" + "\n".join(failures),
            pytrace=False,
        )


# -- foxray ---------------------------------------------------------------------------------


class Foxray:
    """A running foxray server and read access to the events it stored."""

    def __init__(self, dsn: str, url: str, db_path: Path, process: subprocess.Popen[bytes]):
        self.dsn = dsn
        self.url = url
        self.db_path = db_path
        self.process = process

    def events(self, event_id: Optional[str] = None) -> list[dict[str, Any]]:
        """Stored events (foxray's normalised form), oldest first, optionally one event id."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            if event_id is None:
                rows = connection.execute("SELECT data FROM foxray_event ORDER BY id").fetchall()
            else:
                rows = connection.execute(
                    "SELECT data FROM foxray_event WHERE event_id = ? ORDER BY id",
                    (event_id.replace("-", "").lower(),),
                ).fetchall()
        finally:
            connection.close()
        return [json.loads(row[0]) for row in rows]

    def wait_for_event(self, event_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll until foxray stored ``event_id``; raise TimeoutError naming what it has."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(event_id)
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                ids = [event.get("event_id") for event in self.events()]
                raise TimeoutError(
                    f"foxray did not store event {event_id} within {timeout}s; it has {ids}"
                )
            time.sleep(0.05)


def _foxray_command() -> Optional[list[str]]:
    """The foxray CLI: next to this interpreter (the venv), else on PATH, else ``-m``."""
    beside = Path(sys.executable).with_name("foxray")
    if beside.exists():
        return [str(beside)]
    on_path = shutil.which("foxray")
    if on_path:
        return [on_path]
    try:
        import foxray  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "foxray"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    # Our --db must win over any database/config the developer has exported.
    hidden = ("DATABASE_URL", "FOXRAY_DATABASE_URL", "FOXRAY_CONFIG")
    return {key: value for key, value in os.environ.items() if key not in hidden}


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _FOXRAY_START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"foxray exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"foxray did not listen on port {port} within {_FOXRAY_START_TIMEOUT}s:\n"
                    + log.read_text(errors="replace")
                ) from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def foxray() -> Iterator[Foxray]:
    """A foxray server on 127.0.0.1 with a fresh SQLite database, for the whole session."""
    command = _foxray_command()
    if command is None:
        pytest.skip("foxray is not installed (pip install foxray)")
    with tempfile.TemporaryDirectory(prefix="foxray-") as tmp:
        db = Path(tmp) / "foxray.sqlite"
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = _clean_env()
        created = subprocess.run(
            [*command, "--db", str(db), "create-project", "tests", "--base-url", url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        match = re.search(r"https?://\S+@\S+/\d+", created.stdout)
        if created.returncode != 0 or match is None:
            raise RuntimeError(
                f"foxray create-project failed ({created.returncode}):\n"
                f"{created.stdout}\n{created.stderr}"
            )
        log = Path(tmp) / "foxray.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [*command, "--db", str(db), "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            _wait_listening(process, port, log)
            yield Foxray(dsn=match.group(0), url=url, db_path=db, process=process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
