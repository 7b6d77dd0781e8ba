"""``send_event``: the product's original one-shot job, on the shared builder and transport.

It delivers synchronously (the caller wants the HTTP status) through exactly the same event
builder, serialiser, envelope and transport code as the background pipeline, makes a single
attempt like the original job, and returns the original job's result object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Optional, Union

from .client import Client
from .delivery import stamp_sent_at
from .dsn import Dsn, DsnError
from .event import Capture, parse_tags
from .levels import parse_level
from .options import Options

__all__ = ["DEFAULT_TIMEOUT", "send_event"]

DEFAULT_TIMEOUT = 10.0


def send_event(
    message: str,
    *,
    level: str = "error",
    environment: Optional[str] = None,
    release: Optional[str] = None,
    user_id: Optional[str] = None,
    tags: Union[list[str], Mapping[str, str], None] = None,
    extra: Optional[Mapping[str, Any]] = None,
    dsn: Union[str, Dsn, None] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Send one event; return ``{"success", "event_id", "status"}`` or ``{"success", "error"...}``.

    Raises ``ValueError`` (``DsnError`` for the DSN) for invalid arguments: a bad level, a tag
    without ``:``, a missing or malformed DSN, a ``SENTRY_PROJECT_ID`` that disagrees with the
    DSN. Never raises for a server or network failure: those are reported in the result.
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError("message must be a non-empty string")
    sentry_level = parse_level(level)
    tag_dict, _ = parse_tags(tags, strict=True)
    if extra is not None and not isinstance(extra, Mapping):
        raise ValueError(f"extra must be an object (a mapping), not {type(extra).__name__}")
    if dsn is None:
        dsn = os.environ.get("SENTRY_DSN") or None
    if not dsn:
        raise DsnError("no DSN: pass dsn= or set SENTRY_DSN")
    parsed = Dsn.parse(dsn)
    check_project_id(parsed)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, not {timeout!r}")

    client = Client(
        Options(
            parsed,
            environment=environment,
            release=release,
            connect_timeout=min(timeout, 5.0),
            read_timeout=timeout,
            send_client_reports=False,
        )
    )
    try:
        capture = Capture(
            message,
            level=sentry_level,
            logger="sentry-send-event",
            tags=tag_dict,
            user={"id": str(user_id)} if user_id not in (None, "") else None,
            extra=dict(extra) if extra else None,
            mechanism="generic",
        )
        envelope = client.prepare(capture)
        assert client.transport is not None and envelope is not None
        result = client.transport.post(stamp_sent_at(envelope, []))
    finally:
        client.close(0)
    if result.ok:
        return {"success": True, "event_id": capture.event_id, "status": result.status}
    if result.status is not None:
        return {
            "success": False,
            "error": f"Sentry API error: {result.status}",
            "response": result.response(),
        }
    return {"success": False, "error": result.error or "unknown network error"}


def check_project_id(dsn: Dsn) -> None:
    """``SENTRY_PROJECT_ID``, when set, must name the DSN's project (the original job had both)."""
    project_id = os.environ.get("SENTRY_PROJECT_ID", "").strip()
    if project_id and project_id != dsn.project_id:
        raise DsnError(
            f"SENTRY_PROJECT_ID={project_id[:32]!r} does not match the DSN's project id"
            f" {dsn.project_id!r}"
        )
