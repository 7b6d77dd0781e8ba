"""DropCounter and client report payloads."""

from __future__ import annotations

import json
import threading

from sentry_log_handler import reports
from sentry_log_handler.reports import (
    MAX_REPORT_ENTRIES,
    REASONS,
    DropCounter,
    client_report_payload,
)


def test_reason_spellings_match_the_spec() -> None:
    assert (
        {
            reports.QUEUE_OVERFLOW,
            reports.CACHE_OVERFLOW,
            reports.RATELIMIT_BACKOFF,
            reports.NETWORK_ERROR,
            reports.SAMPLE_RATE,
            reports.BEFORE_SEND,
            reports.EVENT_PROCESSOR,
            reports.SEND_ERROR,
            reports.INTERNAL_SDK_ERROR,
            reports.BUFFER_OVERFLOW,
        }
        == REASONS
        == {
            "queue_overflow",
            "cache_overflow",
            "ratelimit_backoff",
            "network_error",
            "sample_rate",
            "before_send",
            "event_processor",
            "send_error",
            "internal_sdk_error",
            "buffer_overflow",
        }
    )


def test_record_take_resets() -> None:
    c = DropCounter()
    assert not c.pending()
    c.record(reports.QUEUE_OVERFLOW, "error")
    c.record(reports.QUEUE_OVERFLOW, "error", 4)
    c.record(reports.RATELIMIT_BACKOFF, "log_item", 100)
    assert c.pending()
    assert c.total() == 105
    assert c.snapshot() == {("queue_overflow", "error"): 5, ("ratelimit_backoff", "log_item"): 100}
    assert c.snapshot() == c.snapshot()  # non-resetting
    taken = c.take()
    assert sorted(taken, key=lambda e: e["reason"]) == [
        {"reason": "queue_overflow", "category": "error", "quantity": 5},
        {"reason": "ratelimit_backoff", "category": "log_item", "quantity": 100},
    ]
    assert c.take() == []
    assert c.total() == 0
    assert not c.pending()


def test_non_positive_quantities_ignored() -> None:
    c = DropCounter()
    c.record(reports.SEND_ERROR, "error", 0)
    c.record(reports.SEND_ERROR, "error", -3)
    assert c.total() == 0
    assert c.lifetime() == {}


def test_lifetime_survives_take_and_restore_does_not_double_count() -> None:
    c = DropCounter()
    c.record(reports.QUEUE_OVERFLOW, "error", 3)
    c.record(reports.SEND_ERROR, "error", 2)
    entries = c.take()
    assert c.lifetime() == {"queue_overflow": 3, "send_error": 2}
    c.restore(entries)  # the report could not be sent
    assert c.total() == 5
    assert c.lifetime() == {"queue_overflow": 3, "send_error": 2}
    c.record(reports.QUEUE_OVERFLOW, "error")
    assert c.snapshot()[("queue_overflow", "error")] == 4
    assert c.lifetime()["queue_overflow"] == 4


def test_restore_merges_with_new_records_and_skips_garbage() -> None:
    c = DropCounter()
    c.record(reports.QUEUE_OVERFLOW, "error", 2)
    entries = c.take()
    c.record(reports.QUEUE_OVERFLOW, "error", 1)
    c.restore(
        [
            *entries,
            {"reason": "x"},
            {"reason": "x", "category": "error", "quantity": "7"},
            {"reason": "x", "category": "error", "quantity": True},
            {"reason": "x", "category": "error", "quantity": 0},
            "not a mapping",  # type: ignore[list-item]
        ]
    )
    assert c.snapshot() == {("queue_overflow", "error"): 3}


def test_take_with_max_entries_leaves_the_rest() -> None:
    c = DropCounter()
    for i in range(MAX_REPORT_ENTRIES + 5):
        c.record(reports.QUEUE_OVERFLOW, f"cat{i}", i + 1)
    first = c.take(max_entries=MAX_REPORT_ENTRIES)
    assert len(first) == MAX_REPORT_ENTRIES
    rest = c.take(max_entries=MAX_REPORT_ENTRIES)
    assert len(rest) == 5
    total = sum(e["quantity"] for e in first + rest)
    assert total == sum(range(1, MAX_REPORT_ENTRIES + 6))
    assert c.take() == []


def test_max_report_fits_in_4_kib() -> None:
    longest_reason = max(REASONS, key=len)
    entries = [
        {"reason": longest_reason, "category": f"profile_chunk{i:02d}", "quantity": 10**19}
        for i in range(MAX_REPORT_ENTRIES)
    ]
    payload = client_report_payload(entries, timestamp=1_700_000_000.5)
    assert payload is not None
    encoded = json.dumps(payload, separators=(",", ":")).encode()
    assert len(encoded) <= 4096


def test_concurrent_records_exact_totals() -> None:
    c = DropCounter()
    n_threads, per_thread = 8, 10_000
    barrier = threading.Barrier(n_threads)

    def work(index: int) -> None:
        barrier.wait()
        category = "error" if index % 2 else "log_item"
        for _ in range(per_thread):
            c.record(reports.QUEUE_OVERFLOW, category)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.total() == n_threads * per_thread
    assert c.snapshot() == {
        ("queue_overflow", "error"): 4 * per_thread,
        ("queue_overflow", "log_item"): 4 * per_thread,
    }
    assert c.lifetime() == {"queue_overflow": n_threads * per_thread}


def test_take_is_atomic_under_concurrent_records() -> None:
    """Nothing is lost or counted twice between the read and the reset."""
    c = DropCounter()
    n_threads, per_thread = 8, 10_000
    taken: list[dict[str, object]] = []
    writers_done = threading.Event()

    def writer() -> None:
        for i in range(per_thread):
            c.record(reports.QUEUE_OVERFLOW if i % 2 else reports.SEND_ERROR, "error")

    def taker() -> None:
        while not writers_done.is_set():
            taken.extend(c.take())
        taken.extend(c.take())

    take_thread = threading.Thread(target=taker)
    take_thread.start()
    writers = [threading.Thread(target=writer) for _ in range(n_threads)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    take_thread.join()
    total = sum(int(e["quantity"]) for e in taken)  # type: ignore[call-overload]
    assert total + c.total() == n_threads * per_thread
    assert c.total() == 0
    assert all(int(e["quantity"]) > 0 for e in taken)  # type: ignore[call-overload]
    assert c.lifetime() == {
        "queue_overflow": n_threads * per_thread // 2,
        "send_error": n_threads * per_thread // 2,
    }


def test_after_fork_resets() -> None:
    c = DropCounter()
    c.record(reports.QUEUE_OVERFLOW, "error")
    c.after_fork()
    assert c.total() == 0
    assert c.lifetime() == {}
    c.record(reports.QUEUE_OVERFLOW, "error")
    assert c.total() == 1


def test_payload_format() -> None:
    entries = [{"reason": "queue_overflow", "category": "error", "quantity": 23}]
    payload = client_report_payload(entries, timestamp=1581084960.75)
    assert payload == {
        "timestamp": "2020-02-07T14:16:00Z",
        "discarded_events": [{"reason": "queue_overflow", "category": "error", "quantity": 23}],
    }
    json.dumps(payload, allow_nan=False)


def test_payload_default_timestamp_is_rfc3339_utc() -> None:
    payload = client_report_payload([{"reason": "x", "category": "error", "quantity": 1}])
    assert payload is not None
    stamp = payload["timestamp"]
    assert isinstance(stamp, str) and stamp.endswith("Z") and "T" in stamp and len(stamp) == 20


def test_payload_none_when_empty_or_all_invalid() -> None:
    assert client_report_payload([]) is None
    assert (
        client_report_payload(
            [
                {"reason": "x", "category": "error", "quantity": 0},
                {"reason": "x", "category": "error", "quantity": 1.5},
                {"reason": None, "category": "error", "quantity": 1},
            ]
        )
        is None
    )


def test_payload_from_take_round_trip() -> None:
    c = DropCounter()
    c.record(reports.CACHE_OVERFLOW, "error", 2)
    payload = client_report_payload(c.take(), timestamp=0)
    assert payload == {
        "timestamp": "1970-01-01T00:00:00Z",
        "discarded_events": [{"reason": "cache_overflow", "category": "error", "quantity": 2}],
    }
