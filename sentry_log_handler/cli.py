"""Command-line front doors: ``sentry-send-event`` and ``python -m sentry_log_handler``.

Exit codes of ``send``: 0 delivered, 1 delivery failed (the result object says why),
2 bad usage — a one-line message on stderr, never a traceback, never the DSN secret.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, Optional

from ._version import __version__
from .dsn import DsnError

__all__ = ["main", "send_main"]


class UsageError(Exception):
    """Bad input from the command line: exit 2 with a one-line message."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _add_send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--message", help="the event message (required unless in --input)")
    parser.add_argument("--level", help="fatal, error (default), warning, info or debug")
    parser.add_argument("--environment", help="default: SENTRY_ENVIRONMENT, else production")
    parser.add_argument("--release", help="default: SENTRY_RELEASE")
    parser.add_argument("--user-id", dest="user_id", help="the user the event is about")
    parser.add_argument(
        "--tag", dest="tags", action="append", metavar="KEY:VALUE", help="repeatable"
    )
    parser.add_argument(
        "--extra",
        dest="extras",
        action="append",
        metavar="KEY=VALUE",
        help="repeatable; VALUE is parsed as JSON when it parses, else kept as a string",
    )
    parser.add_argument("--extra-json", metavar="OBJECT", help="extra data as one JSON object")
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="JSON file with the original job's input object; flags override it",
    )
    parser.add_argument("--dsn", help="default: SENTRY_DSN")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


def _load_input(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise UsageError(f"--input {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"--input {path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("input"), dict):
        data = data["input"]
    if not isinstance(data, dict):
        raise UsageError(f"--input {path}: expected a JSON object")
    return data


def _parse_extra_pair(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"invalid --extra {text!r}: expected KEY=VALUE")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def build_send_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Merge --input, then flags, into send_event keyword arguments."""
    job: dict[str, Any] = _load_input(args.input) if args.input else {}
    known = {"message", "level", "environment", "release", "user_id", "tags", "extra"}
    unknown = sorted(set(job) - known)
    if unknown:
        raise UsageError(f"--input: unknown field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {key: job[key] for key in known if job.get(key) is not None}
    for key in ("message", "level", "environment", "release", "user_id"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    if args.tags:
        kwargs["tags"] = list(args.tags)
    extra: dict[str, Any] = {}
    if isinstance(kwargs.get("extra"), dict):
        extra.update(kwargs["extra"])
    elif kwargs.get("extra") is not None:
        raise UsageError("--input: extra must be a JSON object")
    if args.extra_json is not None:
        try:
            parsed = json.loads(args.extra_json)
        except ValueError as exc:
            raise UsageError(f"--extra-json: not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise UsageError("--extra-json: expected a JSON object")
        extra.update(parsed)
    for pair in args.extras or ():
        key, value = _parse_extra_pair(pair)
        extra[key] = value
    if extra:
        kwargs["extra"] = extra
    else:
        kwargs.pop("extra", None)
    if not kwargs.get("message"):
        raise UsageError("--message is required (or a message in --input)")
    kwargs["dsn"] = args.dsn or os.environ.get("SENTRY_DSN") or None
    if not kwargs["dsn"]:
        raise UsageError("no DSN: pass --dsn or set SENTRY_DSN")
    kwargs["timeout"] = args.timeout
    return kwargs


def run_send(args: argparse.Namespace) -> int:
    from .send import send_event

    kwargs = build_send_kwargs(args)
    try:
        result = send_event(**kwargs)
    except (DsnError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result.get("success") else 1


def _usage_exit(prog: str, exc: UsageError) -> int:
    message = " ".join(str(exc).split())
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def send_main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sentry-send-event`` console script."""
    parser = _Parser(prog="sentry-send-event", description="Send one event to Sentry.")
    _add_send_arguments(parser)
    parser.add_argument("--version", action="version", version=__version__)
    try:
        return run_send(parser.parse_args(argv))
    except UsageError as exc:
        return _usage_exit(parser.prog, exc)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m sentry_log_handler {send,inbox,demo}``."""
    parser = _Parser(prog="python -m sentry_log_handler")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    send = sub.add_parser("send", help="send one event (same as sentry-send-event)")
    _add_send_arguments(send)
    inbox = sub.add_parser("inbox", help="run a local Sentry-compatible inbox and print events")
    inbox.add_argument("--port", type=int, default=0, help="default: a free port")
    sub.add_parser("demo", help="send the example event (to a local inbox unless SENTRY_DSN)")
    try:
        args = parser.parse_args(argv)
        if args.command == "send":
            return run_send(args)
        if args.command == "inbox":
            from .inbox import serve_forever_cli

            serve_forever_cli(args.port)
            return 0
        if args.command == "demo":
            from .demo import run_demo

            return run_demo()
        parser.print_help(sys.stderr)
        return 2
    except UsageError as exc:
        return _usage_exit(parser.prog, exc)
