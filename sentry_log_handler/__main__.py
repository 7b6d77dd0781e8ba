"""``python -m sentry_log_handler {send,inbox,demo}``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
