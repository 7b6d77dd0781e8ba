"""HTTP delivery of envelope bytes over one keep-alive ``requests.Session``.

The transport knows HTTP and nothing about events: it gzips, authenticates, posts, reads a
bounded answer and reports what happened as an :class:`HttpResult`. It never raises for a
server or network failure, and no message it produces contains the DSN secret or the auth
header. Rate limits are learnt from every answer (``X-Sentry-Rate-Limits``, ``Retry-After``)
by the :class:`~sentry_log_handler.ratelimit.RateLimiter` it owns; whether and when to retry
is decided above it, by :mod:`sentry_log_handler.delivery`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any, Optional

import requests

from .dsn import Dsn
from .envelope import gzip_bytes
from .ratelimit import RateLimiter

__all__ = ["MAX_RESPONSE_BYTES", "HttpResult", "Transport"]

MAX_RESPONSE_BYTES = 64 * 1024


class HttpResult:
    """The outcome of one POST: an HTTP status with a bounded body, or a network error."""

    __slots__ = ("body", "error", "headers", "status")

    def __init__(
        self,
        status: Optional[int] = None,
        *,
        headers: Optional[Mapping[str, str]] = None,
        body: bytes = b"",
        error: Optional[str] = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = headers or {}
        self.body = body
        self.error = error

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Network failures and 5xx may succeed later; 4xx (429 included) never will."""
        return self.status is None or self.status >= 500

    def response(self) -> Any:
        """The body as parsed JSON when it is JSON, else as text."""
        text = self.body.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def __repr__(self) -> str:
        if self.error is not None:
            return f"HttpResult(error={self.error!r})"
        return f"HttpResult(status={self.status})"


class Transport:
    """Posts envelopes to one DSN's endpoint. Not shared across threads except via a lock."""

    def __init__(
        self,
        dsn: Dsn,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        http_proxy: Optional[str] = None,
        https_proxy: Optional[str] = None,
        ca_certs: Optional[str] = None,
        rate_limiter: Optional[RateLimiter] = None,
    ) -> None:
        self.dsn = dsn
        self.timeout = (connect_timeout, read_timeout)
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self._proxies: dict[str, str] = {}
        if http_proxy:
            self._proxies["http"] = http_proxy
        if https_proxy:
            self._proxies["https"] = https_proxy
        self._verify: Any = ca_certs if ca_certs else True
        self._headers = {
            "User-Agent": dsn.user_agent,
            "X-Sentry-Auth": dsn.auth_header(),
            "Content-Type": "application/x-sentry-envelope",
            "Content-Encoding": "gzip",
        }
        self._lock = threading.Lock()
        self._session: Optional[requests.Session] = None

    def __repr__(self) -> str:
        return f"Transport({self.dsn!r})"

    def _get_session(self) -> requests.Session:
        session = self._session
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            # Proxies and CA bundles from the environment apply, like curl, but they are read
            # once, here (again after a fork, see reset()). Left to requests (trust_env) they
            # would be re-read from os.environ on every request (~20 % of a loopback POST),
            # and would override our own options: requests lets HTTPS_PROXY and
            # REQUESTS_CA_BUNDLE win over session.proxies and session.verify.
            proxies = dict(requests.utils.get_environ_proxies(self.dsn.envelope_url))
            proxies.update(self._proxies)
            session.proxies.update(proxies)
            verify = self._verify
            if verify is True:
                verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                )
            session.verify = verify
            session.trust_env = False
            self._session = session
        return session

    def post(self, envelope: bytes, *, compressed: bool = False) -> HttpResult:
        """POST ``envelope`` (gzipping it unless ``compressed``); never raises."""
        body = envelope if compressed else gzip_bytes(envelope)
        with self._lock:
            result = self._post(body)
        if result.status is not None:
            try:
                self.rate_limiter.update(result.status, result.headers)
            except Exception:  # a hostile header must not break delivery
                pass
        return result

    def _post(self, body: bytes) -> HttpResult:
        try:
            session = self._get_session()
            response = session.post(
                self.dsn.envelope_url, data=body, timeout=self.timeout, stream=True
            )
        except requests.Timeout as exc:
            return HttpResult(error=f"Timeout: {self._describe(exc)}")
        except requests.ConnectionError as exc:
            return HttpResult(error=f"Connection error: {self._describe(exc)}")
        except Exception as exc:  # TLS setup, invalid proxy URL, ...
            return HttpResult(error=f"{type(exc).__name__}: {self._describe(exc)}")
        try:
            data = _read_bounded(response, MAX_RESPONSE_BYTES)
        except Exception:
            data = b""
        finally:
            response.close()
        headers = {key.lower(): value for key, value in response.headers.items()}
        return HttpResult(response.status_code, headers=headers, body=data)

    def _describe(self, exc: BaseException) -> str:
        """A short reason without URLs' query strings, auth values or the secret."""
        reason: BaseException = exc
        seen = 0
        while seen < 8:
            inner = getattr(reason, "reason", None) or reason.__cause__ or reason.__context__
            if not isinstance(inner, BaseException) or inner is reason:
                break
            reason = inner
            seen += 1
        text = str(reason) or type(reason).__name__
        if "Max retries exceeded" in text or "HTTPConnectionPool" in text:
            text = type(reason).__name__
        text = text.replace(self._headers["X-Sentry-Auth"], "[Filtered]")
        if self.dsn.secret:
            text = text.replace(self.dsn.secret, "[Filtered]")
        return f"{self.dsn.netloc}: {text[:300]}"

    def reset(self) -> None:
        """Forget pooled connections (after fork: sockets must not be shared with the parent)."""
        self._lock = threading.Lock()
        self._session = None

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()


def _read_bounded(response: requests.Response, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body: a huge or endless answer cannot exhaust memory."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]
