"""Ship log records and structlog events to Sentry from a background thread.

Front doors: :class:`SentryHandler` (``logging``), :class:`SentryProcessor` (structlog) and
:func:`send_event` (one event, synchronously). They share one event builder and one delivery
path, owned by a :class:`Client`.

Names are imported lazily (PEP 562): ``import sentry_log_handler`` stays cheap, and importing
one submodule (``sentry_log_handler.inbox``, say) does not pull in the whole pipeline.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import Client
    from .dsn import Dsn, DsnError
    from .handler import SentryHandler
    from .options import Options
    from .processor import SentryProcessor
    from .send import send_event

_LAZY = {
    "Client": "client",
    "Dsn": "dsn",
    "DsnError": "dsn",
    "Options": "options",
    "SentryHandler": "handler",
    "SentryProcessor": "processor",
    "send_event": "send",
}

__all__ = [
    "Client",
    "Dsn",
    "DsnError",
    "Options",
    "SentryHandler",
    "SentryProcessor",
    "__version__",
    "send_event",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
