"""Every example runs, against the test's inbox (so Relay checks its events) and on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentry_log_handler.inbox import Inbox

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example -> events it sends
EXPECTED = {
    "stdlib_basic.py": 2,
    "django_logging.py": 1,
    "background_jobs.py": 3,
    "structlog_app.py": 1,
    "structlog_stdlib.py": 1,
}


def _run(script: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=120, check=False, cwd=EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_against_inbox(inbox: Inbox, name: str) -> None:
    script = EXAMPLES / name
    if not script.exists():
        pytest.skip(f"{name} not written yet")
    if name.startswith("structlog"):
        pytest.importorskip("structlog")
    proc = _run(script, {"SENTRY_DSN": inbox.dsn})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(inbox.wait_for_events(EXPECTED[name])) >= EXPECTED[name]


def test_example_runs_with_its_own_inbox() -> None:
    proc = _run(EXAMPLES / "stdlib_basic.py", {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "inbox got: error payment card declined" in proc.stdout


def test_demo_runs_with_its_own_inbox() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    proc = subprocess.run([sys.executable, "-m", "sentry_log_handler", "demo"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"success": true' in proc.stdout
    assert "the local inbox received 2 event(s)" in proc.stdout
