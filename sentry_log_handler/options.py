"""Client options: one validated object shared by the handler, the processor and send_event.

Names follow sentry-sdk where the meaning is the same. Bad values fail here, at construction,
with a message naming the option and what is expected, so that a typo never turns into a
silent runtime drop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union

from .dsn import Dsn

__all__ = ["BeforeSend", "Options"]

BeforeSend = Callable[[dict[str, Any], dict[str, Any]], Optional[dict[str, Any]]]

DEFAULT_MAX_QUEUE_SIZE = 10_000
DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024


class Options:
    """Validated configuration. Attributes are read-only by convention after construction."""

    def __init__(
        self,
        dsn: Union[str, Dsn, None] = None,
        *,
        environment: Optional[str] = None,
        release: Optional[str] = None,
        server_name: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        sample_rate: float = 1.0,
        before_send: Optional[BeforeSend] = None,
        send_default_pii: bool = False,
        include_local_variables: bool = False,
        in_app_include: Iterable[str] = (),
        in_app_exclude: Iterable[str] = (),
        max_breadcrumbs: int = 100,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        shutdown_timeout: float = 2.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
        retry_backoff_max: float = 10.0,
        http_proxy: Optional[str] = None,
        https_proxy: Optional[str] = None,
        ca_certs: Optional[str] = None,
        spool_dir: Optional[str] = None,
        spool_max_files: int = 1000,
        spool_max_bytes: int = 50 * 1024 * 1024,
        send_client_reports: bool = True,
        debug: bool = False,
    ) -> None:
        if dsn is None:
            dsn = os.environ.get("SENTRY_DSN") or None
        self.dsn: Optional[Dsn] = Dsn.parse(dsn) if dsn else None
        self.environment = environment
        self.release = release
        self.server_name = server_name
        self.tags = dict(tags or {})
        self.sample_rate = _fraction("sample_rate", sample_rate)
        if before_send is not None and not callable(before_send):
            raise TypeError("before_send must be callable (event, hint) -> event | None")
        self.before_send = before_send
        self.send_default_pii = bool(send_default_pii)
        self.include_local_variables = bool(include_local_variables)
        self.in_app_include = _names("in_app_include", in_app_include)
        self.in_app_exclude = _names("in_app_exclude", in_app_exclude)
        self.max_breadcrumbs = _count("max_breadcrumbs", max_breadcrumbs, minimum=0)
        self.max_queue_size = _count("max_queue_size", max_queue_size, minimum=1)
        self.max_queue_bytes = _count("max_queue_bytes", max_queue_bytes, minimum=1024)
        self.shutdown_timeout = _seconds("shutdown_timeout", shutdown_timeout)
        self.connect_timeout = _seconds("connect_timeout", connect_timeout, positive=True)
        self.read_timeout = _seconds("read_timeout", read_timeout, positive=True)
        self.max_retries = _count("max_retries", max_retries, minimum=0)
        self.retry_backoff = _seconds("retry_backoff", retry_backoff)
        self.retry_backoff_max = _seconds("retry_backoff_max", retry_backoff_max)
        self.http_proxy = http_proxy
        self.https_proxy = https_proxy
        self.ca_certs = ca_certs
        self.spool_dir = os.fspath(spool_dir) if spool_dir else None
        self.spool_max_files = _count("spool_max_files", spool_max_files, minimum=1)
        self.spool_max_bytes = _count("spool_max_bytes", spool_max_bytes, minimum=1024)
        self.send_client_reports = bool(send_client_reports)
        self.debug = bool(debug)

    def __repr__(self) -> str:
        return f"Options(dsn={self.dsn!r}, environment={self.environment!r})"


def _fraction(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1, not {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
    return number


def _count(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _seconds(name: str, value: Any, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if number < 0 or (positive and number == 0) or number != number:
        expected = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a number of seconds {expected}, not {value!r}")
    return number


def _names(name: str, value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    names = tuple(value)
    for item in names:
        if not isinstance(item, str):
            raise ValueError(f"{name} must be module name prefixes (strings), not {item!r}")
    return names
