"""One side of a process restart, for the spool rows of tests/test_delivery.py.

The spool's promise is about processes, not threads: what one process could not deliver, a
later one sends, exactly once, whether the first exited normally (the atexit hook spools what
is still queued) or was killed with SIGKILL. So the tests run this script as real children::

    python delivery_child.py log   DSN SPOOL_DIR N [OPTIONS_JSON]  # log N errors, exit normally
    python delivery_child.py kill  DSN SPOOL_DIR N [OPTIONS_JSON]  # log N errors, SIGKILL self
                                                                   # once N envelopes are spooled
    python delivery_child.py flush DSN SPOOL_DIR [OPTIONS_JSON]    # re-send the spool, print
                                                                   # {"flushed": bool, **stats}

``OPTIONS_JSON`` holds extra SentryHandler keyword options. Messages are ``"restart e<i>"``.
Exit codes: 0 fine, 2 usage, 3 the spool never reached N files (kill mode, after 30 s).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from typing import Any

from sentry_log_handler import SentryHandler

_SPOOL_WAIT = 30.0


def _pending_files(spool_dir: str) -> int:
    try:
        return sum(1 for name in os.listdir(spool_dir) if name.endswith(".envelope"))
    except FileNotFoundError:
        return 0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("log", "kill", "flush"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, dsn, spool_dir = argv[:3]
    rest = argv[3:]
    count = 0
    if mode != "flush":
        count = int(rest.pop(0))
    options: dict[str, Any] = json.loads(rest[0]) if rest else {}
    handler = SentryHandler(dsn, spool_dir=spool_dir, **options)
    logger = logging.getLogger("delivery-child")
    logger.propagate = False
    logger.addHandler(handler)

    if mode == "flush":
        flushed = handler.flush(30)
        print(json.dumps({"flushed": flushed, **handler.client.stats()}))
        handler.close()
        return 0

    for i in range(count):
        logger.error("restart e%d", i)
    if mode == "log":
        return 0  # the client's atexit hook spools what is still queued
    deadline = time.monotonic() + _SPOOL_WAIT
    while _pending_files(spool_dir) < count:
        if time.monotonic() > deadline:
            return 3
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)
    return 4  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
