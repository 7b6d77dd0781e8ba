"""The package version, in one place for packaging, the SDK header and the User-Agent."""

from __future__ import annotations

__version__ = "0.1.0"
SDK_NAME = "sentry-log-handler"
