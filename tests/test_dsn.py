"""DSN parsing: a table of good and bad DSNs; the secret never shows."""

from __future__ import annotations

import pickle

import pytest

from sentry_log_handler.dsn import Dsn, DsnError

GOOD = [
    (
        "https://abc123@o123456.ingest.sentry.io/7890123",
        "https://o123456.ingest.sentry.io/api/7890123/envelope/",
        "abc123",
        "7890123",
    ),
    ("http://key@127.0.0.1:9000/1", "http://127.0.0.1:9000/api/1/envelope/", "key", "1"),
    ("HTTPS://key@Example.COM/42", "https://example.com/api/42/envelope/", "key", "42"),
    ("https://key@host:443/5", "https://host/api/5/envelope/", "key", "5"),
    ("http://key@host:80/5", "http://host/api/5/envelope/", "key", "5"),
    ("https://key@host/prefix/sub/9", "https://host/prefix/sub/api/9/envelope/", "key", "9"),
    ("https://key@host/9/", "https://host/api/9/envelope/", "key", "9"),
    ("http://key@[::1]:9000/3", "http://[::1]:9000/api/3/envelope/", "key", "3"),
    ("https://pub:topsecret@host/7", "https://host/api/7/envelope/", "pub", "7"),
    ("  https://key@host/8  ", "https://host/api/8/envelope/", "key", "8"),
]


@pytest.mark.parametrize(("text", "url", "key", "project"), GOOD)
def test_good_dsns(text: str, url: str, key: str, project: str) -> None:
    dsn = Dsn.parse(text)
    assert dsn.envelope_url == url
    assert dsn.public_key == key
    assert dsn.project_id == project
    auth = dsn.auth_header()
    assert auth.startswith("Sentry sentry_version=7, sentry_client=sentry-log-handler/")
    assert f"sentry_key={key}" in auth
    assert dsn.user_agent.startswith("sentry-log-handler/")


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("abc@host/1", "scheme"),
    ("ftp://key@host/1", "scheme"),
    ("https://host/1", "public key"),
    ("https://@host/1", "public key"),
    ("https://k!y@host/1", "public key"),
    ("https://key@/1", "host"),
    ("https://key@ho st/1", "host"),
    ("https://key@host:notaport/1", "host"),
    ("https://key@host:99999/1", "host"),
    ("https://key@host", "project id"),
    ("https://key@host/", "project id"),
    ("https://key@host/abc", "project id"),
    ("https://key@host/1a", "project id"),
    ("https://key:s3cr3t@host/abc", "project id"),
]


@pytest.mark.parametrize(("text", "part"), BAD)
def test_bad_dsns_name_the_part(text: str, part: str) -> None:
    with pytest.raises(DsnError) as info:
        Dsn.parse(text)
    assert part in str(info.value)


def test_non_string() -> None:
    with pytest.raises(DsnError, match="string"):
        Dsn.parse(42)  # type: ignore[arg-type]


def test_secret_never_shown() -> None:
    dsn = Dsn.parse("https://pub:topsecret@host/7")
    assert dsn.secret == "topsecret"
    assert "topsecret" not in str(dsn)
    assert "topsecret" not in repr(dsn)
    assert "sentry_secret=topsecret" in dsn.auth_header()
    with pytest.raises(DsnError) as info:
        Dsn.parse("https://pub:topsecret@host/notanumber")
    assert "topsecret" not in str(info.value)
    clone = pickle.loads(pickle.dumps(dsn))
    assert clone == dsn and clone.secret == "topsecret"


def test_immutable() -> None:
    dsn = Dsn.parse("https://key@host/1")
    with pytest.raises(AttributeError):
        dsn.host = "evil"  # type: ignore[misc]
