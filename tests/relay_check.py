"""Relay's own normalizer as a test oracle.

Sentry's ingestion (Relay) silently drops or rewrites invalid fields and records why in
``errors``/``_meta``; the event still "arrives", so only this check notices that a field we
built was thrown away. Every event the inbox fixture receives goes through it.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import sentry_relay

_normalizer: Any = None


def _normalize(event: Any) -> tuple[Optional[dict[str, Any]], list[str]]:
    """Normalize like Relay; return (normalized event or None, list of problems)."""
    global _normalizer
    if _normalizer is None:  # configuration only: build once, reuse across tests
        _normalizer = sentry_relay.StoreNormalizer(  # type: ignore[attr-defined]
            project_id=1, enable_trimming=True
        )
    try:
        normalized: dict[str, Any] = _normalizer.normalize_event(event)
    except Exception as exc:  # the normalizer refuses the event outright
        return None, [f"Relay rejected the event: {exc!r}"]
    problems = [json.dumps(error, default=repr) for error in normalized.get("errors") or []]
    if normalized.get("_meta"):
        problems.append("_meta: " + json.dumps(normalized["_meta"], default=repr))
    return normalized, problems


def relay_problems(event: Any) -> list[str]:
    """What Relay objects to in ``event`` (empty list: clean)."""
    return _normalize(event)[1]


def assert_relay_clean(event: dict[str, Any]) -> dict[str, Any]:
    """Assert Relay keeps ``event`` as is (no errors, no _meta); return the normalized form."""
    normalized, problems = _normalize(event)
    if problems or normalized is None:
        raise AssertionError(
            "Relay's normalizer reports problems:\n  "
            + "\n  ".join(problems)
            + "\nevent:\n"
            + json.dumps(event, indent=2, default=repr, ensure_ascii=False)[:20000]
        )
    return normalized
