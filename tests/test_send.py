"""``send_event`` and ``sentry-send-event`` against real receivers: the local inbox (with
faults) and foxray. The original job's result contract is checked field by field."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sentry_log_handler import send_event
from sentry_log_handler.demo import EXAMPLE_INPUT
from sentry_log_handler.dsn import DsnError
from sentry_log_handler.inbox import Fault, Inbox

# The original job's example input, with the extra of the issue's "done when" command.
EXAMPLE: dict[str, Any] = {**EXAMPLE_INPUT, "extra": {"user_agent": "Mozilla/5.0"}}

HEX32 = re.compile(r"\A[0-9a-f]{32}\Z")


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(autouse=True)
def _no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SENTRY_DSN", "SENTRY_PROJECT_ID", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE"):
        monkeypatch.delenv(name, raising=False)


def assert_example_event(event: dict[str, Any]) -> None:
    assert event["level"] == "warning"
    assert event["environment"] == "staging"
    assert event["release"] == "v1.2.3"
    assert event["user"] == {"id": "user_12345"}
    assert event["tags"]["feature"] == "auth"
    assert event["tags"]["component"] == "login"
    assert event["extra"] == {"user_agent": "Mozilla/5.0"}
    assert event["logentry"]["message"] == EXAMPLE["message"]
    assert event["platform"] == "python"
    assert event["sdk"]["name"] == "sentry-log-handler"
    assert {"runtime", "os"} <= set(event["contexts"])


def test_success(inbox: Inbox) -> None:
    result = send_event(**EXAMPLE, dsn=inbox.dsn)
    assert set(result) == {"success", "event_id", "status"}
    assert result["success"] is True and result["status"] == 200
    assert HEX32.match(result["event_id"])
    (event,) = inbox.wait_for_events(1)
    assert event["event_id"] == result["event_id"]
    assert_example_event(event)
    (envelope,) = inbox.envelopes
    assert envelope.headers["event_id"] == result["event_id"]
    assert "sent_at" in envelope.headers
    request = inbox.requests[0]
    assert request.headers.get("Content-Encoding", request.headers.get("content-encoding")) \
        == "gzip"


def test_dsn_from_environment(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", inbox.dsn)
    monkeypatch.setenv("SENTRY_PROJECT_ID", "1")
    assert send_event("from env")["success"] is True


def test_project_id_must_match(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_PROJECT_ID", "999")
    with pytest.raises(DsnError, match="SENTRY_PROJECT_ID"):
        send_event("x", dsn=inbox.dsn)
    assert inbox.request_count == 0


@pytest.mark.parametrize("status", [401, 413, 500])
def test_http_errors(inbox: Inbox, status: int) -> None:
    inbox.fail(status)
    result = send_event(**EXAMPLE, dsn=inbox.dsn)
    assert result["success"] is False
    assert result["error"] == f"Sentry API error: {status}"
    assert "response" in result
    assert inbox.request_count == 1  # the one-shot job makes one attempt


def test_401_from_a_wrong_key(inbox: Inbox) -> None:
    bad = inbox.dsn.replace(inbox.public_key, "0" * 32)
    result = send_event("x", dsn=bad)
    assert result == {
        "success": False,
        "error": "Sentry API error: 401",
        "response": result["response"],
    }
    assert isinstance(result["response"], dict)  # parsed JSON body


def test_connection_refused() -> None:
    result = send_event("x", dsn=f"http://key:hidden@127.0.0.1:{_unused_port()}/1", timeout=3)
    assert result["success"] is False
    assert "Connection" in result["error"]
    assert "hidden" not in json.dumps(result)
    assert set(result) == {"success", "error"}


def test_timeout(inbox: Inbox) -> None:
    inbox.set_fault(Fault(delay=3.0))
    result = send_event("x", dsn=inbox.dsn, timeout=0.5)
    assert result["success"] is False
    assert "Timeout" in result["error"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": "loud"}, "invalid level"),
        ({"tags": ["nocolon"]}, "invalid tag"),
        ({"tags": "k:v"}, "tags must be"),
        ({"extra": ["not", "a", "dict"]}, "extra must be"),
        ({"dsn": "not a dsn"}, "scheme"),
        ({"dsn": None}, "no DSN"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"dsn": "http://k@127.0.0.1:9/1"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        send_event("x", **args)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("FATAL", "fatal"), ("critical", "fatal"), ("warn", "warning"), ("Info", "info"),
     ("debug", "debug"), ("error", "error")],
)
def test_levels(inbox: Inbox, given: str, expected: str) -> None:
    send_event("lvl", level=given, dsn=inbox.dsn)
    assert inbox.wait_for_events(1)[0]["level"] == expected


def test_environment_defaults(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    send_event("a", dsn=inbox.dsn)
    monkeypatch.setenv("SENTRY_ENVIRONMENT", "qa")
    monkeypatch.setenv("SENTRY_RELEASE", "r9")
    send_event("b", dsn=inbox.dsn)
    first, second = inbox.wait_for_events(2)
    assert first["environment"] == "production" and "release" not in first
    assert second["environment"] == "qa" and second["release"] == "r9"


def test_over_limit_values_are_truncated_not_rejected(inbox: Inbox) -> None:
    result = send_event(
        "m" * 20_000,
        environment="e" * 100,
        release="r" * 300,
        user_id="u" * 500,
        tags={"k" * 300: "v" * 300, "ok": "line\nbreak"},
        extra={"big": "x" * 100_000, "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}},
        dsn=inbox.dsn,
    )
    assert result["success"] is True
    (event,) = inbox.wait_for_events(1)
    assert len(event["logentry"]["message"]) <= 8192
    assert len(event["environment"]) <= 64


# -- the command line ----------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sentry_log_handler", "send", *args],
        capture_output=True, text=True, env=full_env, timeout=60, check=False,
    )


DONE_WHEN = [
    "--message", "User login failed - invalid credentials", "--level", "warning",
    "--environment", "staging", "--release", "v1.2.3", "--user-id", "user_12345",
    "--tag", "feature:auth", "--tag", "component:login",
    "--extra-json", '{"user_agent": "Mozilla/5.0"}',
]


def test_cli_success(inbox: Inbox) -> None:
    proc = run_cli(*DONE_WHEN, env={"SENTRY_DSN": inbox.dsn})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == {"success", "event_id", "status"}
    assert result["success"] is True and result["status"] == 200
    (event,) = inbox.wait_for_events(1)
    assert event["event_id"] == result["event_id"]
    assert_example_event(event)


def test_console_script_is_installed(inbox: Inbox) -> None:
    script = Path(sys.executable).with_name("sentry-send-event")
    assert script.exists()
    proc = subprocess.run([str(script), "--message", "hi", "--dsn", inbox.dsn],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["success"] is True


def test_cli_401(inbox: Inbox) -> None:
    inbox.fail(401)
    proc = run_cli(*DONE_WHEN, "--dsn", inbox.dsn)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["success"] is False
    assert result["error"] == "Sentry API error: 401"
    assert "response" in result


def test_cli_connection_refused() -> None:
    proc = run_cli("--message", "x", "--dsn", f"http://k@127.0.0.1:{_unused_port()}/1",
                   "--timeout", "2")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["success"] is False


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--message", "x", "--dsn", "https://pub:s3cretvalue@host/notanumber"], {},
         "project id"),
        (["--message", "x", "--dsn", "ftp://pub:s3cretvalue@host/1"], {}, "scheme"),
        (["--message", "x"], {}, "no DSN"),
        (["--message", "x", "--level", "loud", "--dsn", "http://k@h/1"], {}, "invalid level"),
        (["--message", "x", "--tag", "nocolon", "--dsn", "http://k@h/1"], {}, "invalid tag"),
        (["--message", "x", "--extra", "novalue", "--dsn", "http://k@h/1"], {}, "KEY=VALUE"),
        (["--message", "x", "--extra-json", "[1]", "--dsn", "http://k@h/1"], {}, "object"),
        (["--dsn", "http://k@h/1"], {}, "--message"),
        (["--message", "x"], {"SENTRY_DSN": "http://pub:s3cretvalue@h/1",
                              "SENTRY_PROJECT_ID": "2"}, "SENTRY_PROJECT_ID"),
        (["--message", "x", "--bogus"], {}, "unrecognized"),
    ],
)
def test_cli_bad_usage(args: list[str], env: dict[str, str], needle: str) -> None:
    proc = run_cli(*args, env=env)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert "s3cretvalue" not in proc.stderr


def test_cli_input_file_and_overrides(inbox: Inbox, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"input": dict(EXAMPLE, extra={"ip": "x", "keep": 1})}))
    proc = run_cli("--input", str(job), "--level", "error", "--extra", "count=3",
                   "--extra", "name=plain text", "--dsn", inbox.dsn)
    assert proc.returncode == 0, proc.stderr
    (event,) = inbox.wait_for_events(1)
    assert event["level"] == "error"  # the flag wins over the file
    assert event["environment"] == "staging"  # from the file
    assert event["extra"]["count"] == 3 and event["extra"]["name"] == "plain text"
    assert event["extra"]["keep"] == 1


# -- foxray, a third-party Sentry-compatible server ------------------------------------------


def test_send_event_to_foxray(foxray: Any) -> None:
    result = send_event(**EXAMPLE, dsn=foxray.dsn)
    assert result["success"] is True and result["status"] == 200
    stored = foxray.wait_for_event(result["event_id"])
    assert stored["level"] == "warning"
    assert stored["environment"] == "staging"
    assert stored["release"] == "v1.2.3"
    assert stored["user"]["id"] == "user_12345"
    tags = stored["tags"]
    tag_map = dict(tags) if isinstance(tags, list) else tags
    assert tag_map["feature"] == "auth" and tag_map["component"] == "login"
    assert stored["extra"]["user_agent"] == "Mozilla/5.0"


def test_cli_to_foxray(foxray: Any) -> None:
    proc = run_cli(*DONE_WHEN, env={"SENTRY_DSN": foxray.dsn})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    stored = foxray.wait_for_event(result["event_id"])
    assert "User login failed" in json.dumps(stored)
    assert stored["level"] == "warning"


def test_foxray_wrong_key_is_401(foxray: Any) -> None:
    from sentry_log_handler.dsn import Dsn

    dsn = Dsn.parse(foxray.dsn)
    bad = foxray.dsn.replace(dsn.public_key, "f" * 32)
    result = send_event("x", dsn=bad)
    assert result["success"] is False
    assert result["error"].startswith("Sentry API error: 4")
