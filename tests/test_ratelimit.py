"""RateLimiter: every header form Sentry documents, and hostile input."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentry_log_handler.ratelimit import (
    ALL_CATEGORIES,
    DEFAULT_RETRY_AFTER,
    KNOWN_CATEGORIES,
    RateLimiter,
    categories_for_item,
    category_for_item,
    parse_rate_limits,
    parse_retry_after,
)

T0 = 1000.0  # monotonic "now" used throughout
WALL = 1_700_000_000.0


def limiter() -> RateLimiter:
    return RateLimiter(clock=lambda: T0, wall_clock=lambda: WALL)


def test_single_category_limit() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "60:error:key"}, now=T0)
    assert rl.is_limited("error", now=T0 + 59.9)
    assert not rl.is_limited("error", now=T0 + 60)
    assert not rl.is_limited("transaction", now=T0)
    assert rl.limited_until("error", now=T0) == T0 + 60


def test_float_retry_after() -> None:
    rl = limiter()
    rl.update(200, {"x-sentry-rate-limits": "2.5:log_item:organization"}, now=T0)
    assert rl.is_limited("log_item", now=T0 + 2.4)
    assert not rl.is_limited("log_item", now=T0 + 2.5)


def test_empty_categories_means_all() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "30::organization"}, now=T0)
    for category in ("error", "default", "log_item", "internal", "something_new"):
        assert rl.is_limited(category, now=T0 + 1)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: 30.0}


def test_multiple_entries_and_multiple_categories() -> None:
    rl = limiter()
    header = "60:transaction:key, 2700:default;error;security:organization"
    rl.update(429, {"X-Sentry-Rate-Limits": header, "Retry-After": "2700"}, now=T0)
    assert rl.snapshot(now=T0) == {
        "default": 2700.0,
        "error": 2700.0,
        "security": 2700.0,
        "transaction": 60.0,
    }
    # Retry-After is ignored when the structured header is present.
    assert not rl.is_limited("log_item", now=T0)


def test_reason_code_and_namespaces_and_future_dimensions_ignored() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "10:error:org:quota_exceeded:custom:x:y"}, now=T0)
    assert rl.is_limited("error", now=T0)


def test_unknown_categories_ignored() -> None:
    rl = limiter()
    # Only unknown categories: the whole entry is ignored (NOT treated as "all").
    rl.update(200, {"X-Sentry-Rate-Limits": "60:metric_bucket;foo:organization"}, now=T0)
    assert not rl.any_active(now=T0)
    # Mixed: the known one applies, the unknown one is dropped.
    rl.update(200, {"X-Sentry-Rate-Limits": "60:foo;error:organization"}, now=T0)
    assert rl.snapshot(now=T0) == {"error": 60.0}


def test_longest_limit_kept_never_shortened() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "100:error:key"}, now=T0)
    rl.update(429, {"X-Sentry-Rate-Limits": "10:error:key"}, now=T0 + 1)
    assert rl.limited_until("error", now=T0) == T0 + 100
    rl.update(429, {"X-Sentry-Rate-Limits": "10:error:key, 500:error:org"}, now=T0 + 1)
    assert rl.limited_until("error", now=T0) == T0 + 501


def test_all_and_category_combine() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "10::org, 100:error:key"}, now=T0)
    assert rl.limited_until("transaction", now=T0) == T0 + 10
    assert rl.limited_until("error", now=T0) == T0 + 100
    assert rl.is_limited("transaction", now=T0 + 5)
    assert not rl.is_limited("transaction", now=T0 + 11)
    assert rl.is_limited("error", now=T0 + 11)


def test_non_429_responses_apply_the_header() -> None:
    for status in (200, 202, 400, 413, 500, 503):
        rl = limiter()
        rl.update(status, {"X-Sentry-Rate-Limits": "60:error:key"}, now=T0)
        assert rl.is_limited("error", now=T0), status


def test_retry_after_only_applies_to_429() -> None:
    rl = limiter()
    rl.update(503, {"Retry-After": "120"}, now=T0)
    assert not rl.any_active(now=T0)


def test_429_with_retry_after_seconds() -> None:
    rl = limiter()
    rl.update(429, {"Retry-After": "120"}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: 120.0}


def test_429_with_float_retry_after() -> None:
    rl = limiter()
    rl.update(429, {"retry-after": " 1.5 "}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: 1.5}


def test_429_with_retry_after_http_date() -> None:
    rl = limiter()
    when = datetime.fromtimestamp(WALL + 90, tz=timezone.utc)
    rl.update(429, {"Retry-After": format_datetime(when, usegmt=True)}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: 90.0}


def test_429_with_http_date_in_the_past_is_zero() -> None:
    when = datetime.fromtimestamp(WALL - 90, tz=timezone.utc)
    assert parse_retry_after(format_datetime(when, usegmt=True), WALL) == 0.0


def test_429_with_neither_header_is_60_seconds() -> None:
    rl = limiter()
    rl.update(429, {}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: DEFAULT_RETRY_AFTER}


def test_429_with_garbage_retry_after_is_60_seconds() -> None:
    rl = limiter()
    rl.update(429, {"Retry-After": "soon-ish"}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: DEFAULT_RETRY_AFTER}


def test_429_with_only_malformed_rate_limit_header_falls_back() -> None:
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "abc:error:key", "Retry-After": "30"}, now=T0)
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: 30.0}


def test_429_with_header_for_unknown_categories_only_does_not_fall_back() -> None:
    # A well-formed header is authoritative even if it names nothing we send.
    rl = limiter()
    rl.update(429, {"X-Sentry-Rate-Limits": "30:metric_bucket:org"}, now=T0)
    assert not rl.any_active(now=T0)


def test_header_names_are_case_insensitive() -> None:
    for name in ("X-Sentry-Rate-Limits", "x-sentry-rate-limits", "X-SENTRY-RATE-LIMITS"):
        rl = limiter()
        rl.update(200, {name: "5:error:key"}, now=T0)
        assert rl.is_limited("error", now=T0)


def test_two_spellings_of_the_header_are_merged() -> None:
    rl = limiter()
    rl.update(
        200,
        {"X-Sentry-Rate-Limits": "5:error:key", "x-sentry-rate-limits": "7:transaction:key"},
        now=T0,
    )
    assert rl.snapshot(now=T0) == {"error": 5.0, "transaction": 7.0}


def test_requests_style_case_insensitive_mapping() -> None:
    requests_structures = pytest.importorskip("requests.structures")
    headers = requests_structures.CaseInsensitiveDict({"X-Sentry-Rate-Limits": "9:error:key"})
    rl = limiter()
    rl.update(200, headers, now=T0)
    assert rl.is_limited("error", now=T0)


def test_bytes_header_values_accepted() -> None:
    rl = limiter()
    rl.update(200, {b"X-Sentry-Rate-Limits": b"9:error:key"}, now=T0)  # type: ignore[dict-item]
    assert rl.is_limited("error", now=T0)


def test_spaces_ignored() -> None:
    limits, valid = parse_rate_limits("  60 : error ; transaction : key ,  30::org ")
    assert valid
    assert limits == [(60.0, ("error", "transaction")), (30.0, (ALL_CATEGORIES,))]


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",",
        ":::",
        "60",
        "-5:error:key",
        "nan:error:key",
        "inf:error:key",
        "1e999:error:key",
        "abc:error:key",
        "60;error:key",
        "\x00:\x00",
        "60:error:key,,,garbage",
    ],
)
def test_malformed_entries_never_raise(value: str) -> None:
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": value}, now=T0)
    rl.update(429, {"X-Sentry-Rate-Limits": value, "Retry-After": value}, now=T0)
    assert rl.is_limited("error", now=T0)  # the 429 fallback or the valid entry applied


def test_valid_entry_survives_malformed_neighbours() -> None:
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": "x:error:key, 60:error:key, -1::org"}, now=T0)
    assert rl.snapshot(now=T0) == {"error": 60.0}


def test_hostile_mapping_never_raises() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    rl = limiter()
    rl.update(429, Broken(), now=T0)
    # Headers unreadable on a 429: the documented 60 s default still applies.
    assert rl.snapshot(now=T0) == {ALL_CATEGORIES: DEFAULT_RETRY_AFTER}
    rl.update(200, None, now=T0)  # type: ignore[arg-type]
    rl.update(200, {1: 2, "X-Sentry-Rate-Limits": 3}, now=T0)  # type: ignore[dict-item]


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599),
    header=st.text(),
    retry_after=st.text(),
)
def test_fuzz_update_never_raises(status: int, header: str, retry_after: str) -> None:
    rl = limiter()
    rl.update(status, {"X-Sentry-Rate-Limits": header, "Retry-After": retry_after}, now=T0)
    rl.snapshot(now=T0)
    rl.is_limited("error", now=T0)


@settings(max_examples=200, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
            st.lists(st.sampled_from([*sorted(KNOWN_CATEGORIES), "zzz"]), max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_longest_wins(entries: list[tuple[float, list[str]]]) -> None:
    header = ", ".join(f"{secs!r}:{';'.join(cats)}:org" for secs, cats in entries)
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": header}, now=T0)
    for category in KNOWN_CATEGORIES:
        expected = max(
            [s for s, cats in entries if category in cats]
            + [s for s, cats in entries if not cats]
            + [0.0]
        )
        until = rl.limited_until(category, now=T0)
        assert (until or T0) - T0 == pytest.approx(expected)


def test_expiry_and_any_active() -> None:
    rl = limiter()
    assert not rl.any_active(now=T0)
    rl.update(200, {"X-Sentry-Rate-Limits": "5:error:key"}, now=T0)
    assert rl.any_active(now=T0 + 4)
    assert not rl.any_active(now=T0 + 5)
    assert rl.limited_until("error", now=T0 + 5) is None
    # Expired entries are forgotten on the next update.
    rl.update(200, {"X-Sentry-Rate-Limits": "5:transaction:key"}, now=T0 + 10)
    assert rl.snapshot(now=T0) == {"transaction": 15.0}


def test_default_clock_is_used_when_now_omitted() -> None:
    clock = [T0]
    rl = RateLimiter(clock=lambda: clock[0])
    rl.update(429, {})
    assert rl.is_limited("error")
    clock[0] += DEFAULT_RETRY_AFTER
    assert not rl.is_limited("error")


def test_event_limited_checks_error_and_default() -> None:
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": "5:default:key"}, now=T0)
    assert rl.event_limited(now=T0)
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": "5:error:key"}, now=T0)
    assert rl.event_limited(now=T0)
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": "5:transaction:key"}, now=T0)
    assert not rl.event_limited(now=T0)


def test_log_items_limited_by_count_or_bytes() -> None:
    for category in ("log_item", "log_byte"):
        rl = limiter()
        rl.update(200, {"X-Sentry-Rate-Limits": f"5:{category}:key"}, now=T0)
        assert rl.item_limited("log", now=T0)
        assert not rl.event_limited(now=T0)


def test_internal_only_blocked_by_internal_or_all() -> None:
    rl = limiter()
    others = ";".join(sorted(KNOWN_CATEGORIES - {"internal"}))
    rl.update(200, {"X-Sentry-Rate-Limits": f"60:{others}:key"}, now=T0)
    assert not rl.is_limited("internal", now=T0)
    assert not rl.item_limited("client_report", now=T0)
    rl.update(200, {"X-Sentry-Rate-Limits": "60:internal:key"}, now=T0)
    assert rl.item_limited("client_report", now=T0)
    rl = limiter()
    rl.update(200, {"X-Sentry-Rate-Limits": "60::key"}, now=T0)
    assert rl.is_limited("internal", now=T0)


@pytest.mark.parametrize(
    ("item_type", "category"),
    [
        ("event", "error"),
        ("transaction", "transaction"),
        ("log", "log_item"),
        ("client_report", "internal"),
        ("attachment", "attachment"),
        ("session", "session"),
        ("sessions", "session"),
        ("span", "span"),
        ("profile", "profile"),
        ("replay_event", "replay"),
        ("replay_recording", "replay"),
        ("check_in", "monitor"),
        ("feedback", "feedback"),
        ("something_new", "default"),
    ],
)
def test_category_for_item(item_type: str, category: str) -> None:
    assert category_for_item(item_type) == category
    assert category_for_item(item_type) in categories_for_item(item_type)
    assert category_for_item(item_type) in KNOWN_CATEGORIES


def test_clear_and_after_fork_keep_working() -> None:
    rl = limiter()
    rl.update(429, {}, now=T0)
    rl.after_fork()
    assert rl.is_limited("error", now=T0)  # limits survive fork: same DSN
    rl.clear()
    assert not rl.any_active(now=T0)


def test_concurrent_updates_and_queries() -> None:
    rl = limiter()
    errors: list[BaseException] = []

    def writer(seconds: int) -> None:
        try:
            for i in range(2000):
                rl.update(200, {"X-Sentry-Rate-Limits": f"{seconds + i % 3}:error:key"}, now=T0)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(2000):
                rl.is_limited("error", now=T0)
                rl.snapshot(now=T0)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (10, 20, 30)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert rl.limited_until("error", now=T0) == T0 + 32
