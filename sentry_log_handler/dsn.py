"""Parse a Sentry DSN into the endpoint and auth facts the transport needs.

A DSN looks like ``{scheme}://{public_key}[:{secret}]@{host}[:{port}]{/prefix}/{project_id}``.
The secret is deprecated and optional; it is kept (older self-hosted servers still check it)
but never shown: not in ``repr``, ``str``, error messages or logs. That is why parsing is
done by hand here instead of letting ``urllib`` errors (which quote the input) escape.
"""

from __future__ import annotations

import re
from typing import Optional, Union
from urllib.parse import urlsplit

from ._version import SDK_NAME, __version__

__all__ = ["Dsn", "DsnError"]

_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9\-\.]*[A-Za-z0-9])?|\[[0-9A-Fa-f:\.]+\])$")


class DsnError(ValueError):
    """A DSN that cannot be used. The message names the bad part, never the secret."""


class Dsn:
    """A parsed DSN. Immutable; ``str()`` and ``repr()`` omit the secret."""

    __slots__ = ("_secret", "host", "path_prefix", "port", "project_id", "public_key", "scheme")

    scheme: str
    public_key: str
    host: str
    port: Optional[int]
    path_prefix: str
    project_id: str
    _secret: Optional[str]

    def __init__(
        self,
        *,
        scheme: str,
        public_key: str,
        host: str,
        project_id: str,
        port: Optional[int] = None,
        path_prefix: str = "",
        secret: Optional[str] = None,
    ) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "path_prefix", path_prefix)
        object.__setattr__(self, "project_id", project_id)
        object.__setattr__(self, "_secret", secret)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Dsn is immutable")

    @property
    def secret(self) -> Optional[str]:
        """The deprecated secret key, if the DSN had one."""
        return self._secret

    @classmethod
    def parse(cls, text: Union[str, Dsn]) -> Dsn:
        """Parse ``text``; raise :class:`DsnError` naming the part that is wrong."""
        if isinstance(text, Dsn):
            return text
        if not isinstance(text, str):
            raise DsnError(f"DSN must be a string, not {type(text).__name__}")
        value = text.strip()
        if not value:
            raise DsnError("DSN is empty")
        scheme, sep, rest = value.partition("://")
        if not sep:
            raise DsnError("DSN has no scheme: expected http://KEY@HOST/PROJECT_ID")
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise DsnError(f"DSN scheme must be http or https, not {scheme[:16]!r}")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at or not userinfo:
            raise DsnError("DSN has no public key: expected SCHEME://KEY@HOST/PROJECT_ID")
        key, colon, secret = userinfo.partition(":")
        if not key:
            raise DsnError("DSN public key is empty")
        if not _KEY_RE.match(key):
            raise DsnError("DSN public key contains invalid characters")
        if colon and not secret:
            secret = ""
        if colon and secret and not _KEY_RE.match(secret):
            raise DsnError("DSN secret key contains invalid characters")
        if "?" in hostpart or "#" in hostpart:
            hostpart = re.split(r"[?#]", hostpart, maxsplit=1)[0]
        netloc, slash, path = hostpart.partition("/")
        if not netloc:
            raise DsnError("DSN has no host")
        try:
            split = urlsplit(f"//{netloc}")
            host = split.hostname or ""
            port = split.port
        except ValueError:
            raise DsnError("DSN host or port is invalid") from None
        if netloc.startswith("["):
            host = f"[{host}]"
        if not host or not _HOST_RE.match(host):
            raise DsnError("DSN host is invalid")
        path = path.rstrip("/")
        if not slash or not path:
            raise DsnError("DSN has no project id: expected .../PROJECT_ID at the end")
        prefix, _, project_id = path.rpartition("/")
        if not project_id.isdigit() or not project_id.isascii():
            raise DsnError(f"DSN project id must be an integer, not {project_id[:32]!r}")
        return cls(
            scheme=scheme,
            public_key=key,
            secret=secret if colon else None,
            host=host.lower(),
            port=port,
            path_prefix=f"/{prefix}" if prefix else "",
            project_id=project_id,
        )

    @property
    def netloc(self) -> str:
        default = {"http": 80, "https": 443}[self.scheme]
        if self.port is None or self.port == default:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def envelope_url(self) -> str:
        """``{scheme}://{host}[:{port}]{prefix}/api/{project_id}/envelope/``."""
        return f"{self.scheme}://{self.netloc}{self.path_prefix}/api/{self.project_id}/envelope/"

    @property
    def user_agent(self) -> str:
        return f"{SDK_NAME}/{__version__}"

    def auth_header(self) -> str:
        """The ``X-Sentry-Auth`` value. Contains the secret when there is one: never log it."""
        parts = [
            "Sentry sentry_version=7",
            f"sentry_client={SDK_NAME}/{__version__}",
            f"sentry_key={self.public_key}",
        ]
        if self._secret:
            parts.append(f"sentry_secret={self._secret}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.public_key}@{self.netloc}{self.path_prefix}/{self.project_id}"

    def __repr__(self) -> str:
        return f"Dsn({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dsn):
            return NotImplemented
        return (str(self), self._secret) == (str(other), other._secret)

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling (multiprocessing) keeps working; the secret travels but is never printed.
        return (_rebuild, (self.scheme, self.public_key, self._secret, self.host, self.port,
                           self.path_prefix, self.project_id))


def _rebuild(
    scheme: str,
    public_key: str,
    secret: Optional[str],
    host: str,
    port: Optional[int],
    path_prefix: str,
    project_id: str,
) -> Dsn:
    return Dsn(scheme=scheme, public_key=public_key, secret=secret, host=host, port=port,
               path_prefix=path_prefix, project_id=project_id)
