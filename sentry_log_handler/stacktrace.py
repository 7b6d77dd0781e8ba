"""Exceptions and stacks turned into Sentry's ``exception`` and ``threads`` interfaces.

The work is split in two because a logging call must stay cheap on the application's thread:

* caller thread: keep the exception object (its ``__traceback__`` pins everything needed) or,
  for ``stack_info=True``, call :func:`capture_stack`, which records only immutable facts
  (code object, line number at that moment, module name) for each frame;
* worker thread: :func:`exception_interface`, :func:`frames_from_stack` and
  :func:`threads_interface` walk tracebacks, read source through :mod:`linecache`, decide
  ``in_app`` and render local variables.

Traceback frames are described with ``tb_lineno``/``tb_lasti`` and ``tb_frame.f_code``: those are
fixed when the exception passes through the frame, while ``f_lineno`` of a frame that is still
running (the one that called ``logger.exception``) keeps moving while the worker catches up.

Exception-group format (Sentry's exception interface, mechanism fields from RFC 0079): when the
tree of exceptions contains a ``BaseExceptionGroup``, every value carries ``exception_id``
(0 for the logged exception, numbered depth first: chained cause/context, then group members),
every value but the logged one carries ``parent_id`` and ``source`` (``"__cause__"``,
``"__context__"`` or ``"exceptions[i]"``), groups carry ``is_exception_group: true``, and the
list is sent oldest first, i.e. in reverse of that numbering, so the logged exception is last.
A plain chain without groups is sent as a plain list (oldest first) without those ids: that is
what Sentry has always understood, and what sentry-sdk sends too. ``mechanism.type`` and
``mechanism.handled`` are set on every value, like sentry-sdk does.

Everything produced here is JSON-safe and sized to pass Relay's normalizer without trimming
(no ``_meta``): exception ``type``/``module`` at most 256 characters, ``value`` at most 8192,
and each frame's ``vars`` within Relay's 2 KiB data-bag budget.
"""

from __future__ import annotations

import builtins
import itertools
import linecache
import math
import os
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from types import CodeType, FrameType, TracebackType
from typing import Any, NamedTuple, Optional

__all__ = [
    "StackEntry",
    "capture_stack",
    "exception_interface",
    "frames_from_stack",
    "logging_frame_skip",
    "stack_frames",
    "threads_interface",
]

# ``BaseExceptionGroup`` exists from Python 3.11 on; looked up dynamically so 3.9 imports us.
_EXCEPTION_GROUP: Optional[type] = getattr(builtins, "BaseExceptionGroup", None)

# Limits. Relay trims longer values and records that in ``_meta``; we cut first so the event
# arrives exactly as we sent it.
MAX_TYPE_CHARS = 256
MAX_VALUE_CHARS = 8192
MAX_LINE_CHARS = 200
MAX_VARS = 50
MAX_VAR_CHARS = 1024
# Relay keeps about 2048 bytes of each frame's ``vars`` (values count as their JSON size + 1,
# keys are free). Stay a little below so escaping estimates cannot tip us over.
VARS_BUDGET = 1900
MAX_VAR_DEPTH = 3
MAX_VAR_ITEMS = 10

_CACHE_LIMIT = 4096
_STR_FAILED = "<exception str() failed>"
_BUILTIN_MODULES = frozenset({"builtins", "__builtin__", "exceptions"})
_SKIP_ROOTS = frozenset({"logging", "sentry_log_handler"})
_THIRD_PARTY_MARKERS = (
    os.sep + "site-packages" + os.sep,
    os.sep + "dist-packages" + os.sep,
)


class StackEntry(NamedTuple):
    """What :func:`capture_stack` keeps of one frame: only facts that cannot change later.

    ``lineno`` and ``lasti`` are copied at capture time because the live frame moves on.
    ``f_locals`` is a shallow copy, present only when locals were asked for.
    """

    code: CodeType
    lineno: Optional[int]
    lasti: int
    module: Optional[str]
    f_locals: Optional[dict[str, Any]]


class _Options(NamedTuple):
    """Per-call settings, normalised once so the per-frame path does no conversions."""

    include_locals: bool
    include_exact: frozenset[str]
    include_prefixes: tuple[str, ...]
    exclude_exact: frozenset[str]
    exclude_prefixes: tuple[str, ...]
    context_lines: int  # lines before/after; negative: no source at all
    checked_files: set[str]  # files whose linecache entry was revalidated in this call


def _options(
    include_locals: bool,
    in_app_include: Sequence[str],
    in_app_exclude: Sequence[str],
    context_lines: int,
) -> _Options:
    include = _prefixes(in_app_include)
    exclude = _prefixes(in_app_exclude)
    return _Options(
        include_locals=include_locals,
        include_exact=frozenset(include),
        include_prefixes=tuple(p + "." for p in include),
        exclude_exact=frozenset(exclude),
        exclude_prefixes=tuple(p + "." for p in exclude),
        context_lines=context_lines,
        checked_files=set(),
    )


def _prefixes(names: Sequence[str]) -> list[str]:
    """Module prefixes without trailing dots; a lone string is one name, not its letters."""
    if isinstance(names, str):
        names = [names]
    return [name.rstrip(".") for name in names if isinstance(name, str) and name.rstrip(".")]


# --------------------------------------------------------------------------- exceptions


def exception_interface(
    exc: BaseException,
    *,
    mechanism_type: str = "logging",
    handled: bool = True,
    include_locals: bool = False,
    in_app_include: Sequence[str] = (),
    in_app_exclude: Sequence[str] = (),
    max_frames: int = 250,
    context_lines: int = 5,
    max_exceptions: int = 25,
) -> dict[str, Any]:
    """Build Sentry's exception interface ``{"values": [...]}`` for ``exc`` (worker side).

    Follows ``__cause__``, then ``__context__`` unless suppressed, and the members of exception
    groups; each exception appears once (cycles are cut) and at most ``max_exceptions`` are
    kept, the ones nearest the logged exception winning. Values are ordered oldest first, the
    logged exception last, as Sentry expects.

    With ``include_locals`` the locals are read when this runs: frames the exception unwound
    are finished, so their locals are final, but the frame that caught the exception (the
    one that logged it) may have moved on by then.
    """
    opts = _options(include_locals, in_app_include, in_app_exclude, context_lines)
    nodes = _walk_exceptions(exc, max(1, max_exceptions))
    tree = _EXCEPTION_GROUP is not None and any(
        isinstance(node[0], _EXCEPTION_GROUP) for node in nodes
    )
    values: list[dict[str, Any]] = []
    for exc_id, (member, parent_id, source) in enumerate(nodes):
        mechanism: dict[str, Any] = {"type": mechanism_type, "handled": handled}
        if tree:
            if source is not None:
                mechanism["source"] = source
            if _EXCEPTION_GROUP is not None and isinstance(member, _EXCEPTION_GROUP):
                mechanism["is_exception_group"] = True
            mechanism["exception_id"] = exc_id
            if parent_id is not None:
                mechanism["parent_id"] = parent_id
        values.append(_exception_value(member, mechanism, opts, max_frames))
    values.reverse()
    return {"values": values}


def _walk_exceptions(
    root: BaseException, limit: int
) -> list[tuple[BaseException, Optional[int], Optional[str]]]:
    """Depth-first, pre-order walk of the exception tree: ``(exc, parent index, source)``.

    The index in the returned list is the exception's ``exception_id``. Iterative, so a long
    chain cannot hit the recursion limit; ``seen`` holds ids, so a cycle ends the branch.
    """
    out: list[tuple[BaseException, Optional[int], Optional[str]]] = []
    seen: set[int] = set()
    pending: list[tuple[BaseException, Optional[int], Optional[str]]] = [(root, None, None)]
    while pending and len(out) < limit:
        exc, parent, source = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        index = len(out)
        out.append((exc, parent, source))
        children: list[tuple[BaseException, Optional[int], Optional[str]]] = []
        cause = getattr(exc, "__cause__", None)
        context = getattr(exc, "__context__", None)
        if isinstance(cause, BaseException):
            children.append((cause, index, "__cause__"))
        elif isinstance(context, BaseException) and not getattr(exc, "__suppress_context__", False):
            children.append((context, index, "__context__"))
        if _EXCEPTION_GROUP is not None and isinstance(exc, _EXCEPTION_GROUP):
            members = getattr(exc, "exceptions", ())
            for i, member in enumerate(itertools.islice(members, limit)):
                if isinstance(member, BaseException):
                    children.append((member, index, f"exceptions[{i}]"))
        pending.extend(reversed(children))  # popped in order: cause/context, then members
    return out


def _exception_value(
    exc: BaseException, mechanism: dict[str, Any], opts: _Options, max_frames: int
) -> dict[str, Any]:
    cls = type(exc)
    value: dict[str, Any] = {
        "type": _cut(getattr(cls, "__qualname__", None) or cls.__name__, MAX_TYPE_CHARS),
        "value": _exception_text(exc),
    }
    module = getattr(cls, "__module__", None)
    if isinstance(module, str) and module not in _BUILTIN_MODULES:
        value["module"] = _cut(module, MAX_TYPE_CHARS)
    frames = _traceback_frames(exc.__traceback__, opts, max_frames)
    if frames:
        value["stacktrace"] = {"frames": frames}
    value["mechanism"] = mechanism
    return value


def _exception_text(exc: BaseException) -> str:
    """``str(exc)`` plus PEP 678 notes; a raising ``__str__`` must not lose the event."""
    try:
        text = str(exc)
    except Exception:
        text = _STR_FAILED
    try:
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, (list, tuple)):
            extra = [n for n in itertools.islice(notes, 100) if isinstance(n, str)]
            if extra:
                text = "\n".join([text, *extra]) if text else "\n".join(extra)
    except Exception:
        pass
    return _cut(text, MAX_VALUE_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _traceback_frames(
    tb: Optional[TracebackType], opts: _Options, max_frames: int
) -> list[dict[str, Any]]:
    """Frames of a traceback, caller first, crashing frame last, middle dropped if too many."""
    entries: list[TracebackType] = []
    while tb is not None:
        entries.append(tb)
        tb = tb.tb_next
    entries = _keep_ends(entries, max_frames)
    frames = []
    for entry in entries:
        frame = entry.tb_frame
        f_globals = frame.f_globals
        module = f_globals.get("__name__")
        f_locals: Optional[Mapping[str, Any]] = frame.f_locals if opts.include_locals else None
        frames.append(
            _frame_dict(
                frame.f_code,
                entry.tb_lineno,
                entry.tb_lasti,
                module if isinstance(module, str) else None,
                f_globals,
                f_locals,
                opts,
            )
        )
    return frames


def _keep_ends(items: list[Any], limit: int) -> list[Any]:
    """Keep the outermost and innermost frames: where it started and where it broke."""
    limit = max(1, limit)
    if len(items) <= limit:
        return items
    head = limit // 2
    return items[:head] + items[len(items) - (limit - head) :]


# --------------------------------------------------------------------------- stacks


def capture_stack(
    frame: Optional[FrameType] = None,
    *,
    skip: Optional[Callable[[FrameType], bool]] = None,
    limit: int = 250,
    with_locals: bool = False,
) -> list[StackEntry]:
    """Record the current stack cheaply (caller thread); returns caller first, innermost last.

    ``frame`` defaults to the caller of this function. ``skip`` drops the innermost frames for
    which it is true (e.g. the logging machinery and this package); once a frame is kept,
    everything further out is kept too, like :meth:`logging.Logger.findCaller`, so a logging
    frame deeper down (a filter calling application code that logs) stays visible. At most
    ``limit`` innermost frames are kept. Only the code object, the line number and the
    instruction offset *now*, and the module name are stored; ``with_locals`` adds a shallow
    copy of each frame's locals, the expensive part, so it is off by default. ``skip`` is
    called on this thread and must not raise.
    """
    current: Optional[FrameType] = sys._getframe(1) if frame is None else frame
    if skip is not None:
        while current is not None and skip(current):
            current = current.f_back
    entries: list[StackEntry] = []
    remaining = limit
    new = tuple.__new__  # what StackEntry._make does, minus a Python-level call per frame
    while current is not None and remaining > 0:
        module = current.f_globals.get("__name__")
        entries.append(
            new(
                StackEntry,
                (
                    current.f_code,
                    current.f_lineno,
                    current.f_lasti,
                    module,
                    dict(current.f_locals) if with_locals else None,
                ),
            )
        )
        current = current.f_back
        remaining -= 1
    entries.reverse()
    return entries


def frames_from_stack(
    entries: Sequence[StackEntry],
    *,
    include_locals: bool = False,
    in_app_include: Sequence[str] = (),
    in_app_exclude: Sequence[str] = (),
    context_lines: int = 5,
) -> list[dict[str, Any]]:
    """Turn :func:`capture_stack` output into Sentry frames (worker side), same order."""
    opts = _options(include_locals, in_app_include, in_app_exclude, context_lines)
    frames = []
    for entry in entries:
        module = entry.module if isinstance(entry.module, str) else None
        frames.append(
            _frame_dict(
                entry.code,
                entry.lineno,
                entry.lasti,
                module,
                _module_globals(module),
                entry.f_locals if include_locals else None,
                opts,
            )
        )
    return frames


# Name used in the team's interface notes.
stack_frames = frames_from_stack


def threads_interface(
    entries: Sequence[StackEntry],
    *,
    thread_id: int,
    thread_name: str,
    include_locals: bool = False,
    in_app_include: Sequence[str] = (),
    in_app_exclude: Sequence[str] = (),
    context_lines: int = 5,
) -> dict[str, Any]:
    """Sentry's threads interface for a stack logged without an exception (``stack_info``)."""
    frames = frames_from_stack(
        entries,
        include_locals=include_locals,
        in_app_include=in_app_include,
        in_app_exclude=in_app_exclude,
        context_lines=context_lines,
    )
    thread: dict[str, Any] = {
        "id": thread_id,
        "name": thread_name,
        "current": True,
        "crashed": False,
    }
    if frames:
        thread["stacktrace"] = {"frames": frames}
    return {"values": [thread]}


def logging_frame_skip(frame: FrameType) -> bool:
    """True for frames of the stdlib ``logging`` package and of ``sentry_log_handler``.

    Decided by the frame's module name, so the repository's tests and examples (other module
    names) count as application code. Meant as the ``skip`` of :func:`capture_stack`.
    """
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and name.partition(".")[0] in _SKIP_ROOTS


def _module_globals(module: Optional[str]) -> Optional[dict[str, Any]]:
    """The module's namespace, so linecache can ask its loader (zip imports) for source."""
    if module is None:
        return None
    mod = sys.modules.get(module)
    namespace = getattr(mod, "__dict__", None)
    return namespace if isinstance(namespace, dict) else None


# --------------------------------------------------------------------------- frames


def _frame_dict(
    code: CodeType,
    lineno: Optional[int],
    lasti: int,
    module: Optional[str],
    module_globals: Optional[dict[str, Any]],
    f_locals: Optional[Mapping[str, Any]],
    opts: _Options,
) -> dict[str, Any]:
    info = _code_info(code, module)
    frame: dict[str, Any] = {
        "filename": info.filename,
        "abs_path": info.abs_path,
        "function": info.function,
    }
    if module:
        frame["module"] = module
    if lineno is not None and lineno > 0:
        frame["lineno"] = lineno
        if opts.context_lines >= 0:
            _add_source(frame, code.co_filename, lineno, code, lasti, module_globals, opts)
    frame["in_app"] = _in_app(info.path_in_app, module, opts)
    if f_locals is not None:
        frame["vars"] = _frame_vars(f_locals)
    return frame


class _CodeInfo(NamedTuple):
    """What a frame's description takes from its code object alone, computed once per code."""

    code: CodeType  # held so the id() key cannot be reused by another code object
    module: Optional[str]
    filename: str
    abs_path: str
    function: str
    path_in_app: bool


# id(code) -> info. Keyed by id because hashing a code object hashes its whole contents.
_CODE_CACHE: dict[int, _CodeInfo] = {}


def _code_info(code: CodeType, module: Optional[str]) -> _CodeInfo:
    info = _CODE_CACHE.get(id(code))
    if info is None or info.code is not code or info.module != module:
        abs_path = _abs_path(code.co_filename or "<unknown>")
        info = _CodeInfo(
            code,
            module,
            _relative_filename(abs_path, module),
            abs_path,
            getattr(code, "co_qualname", None) or code.co_name or "<unknown>",
            _path_in_app(abs_path),
        )
        _remember(_CODE_CACHE, id(code), info)
    return info


def _add_source(
    frame: dict[str, Any],
    filename: str,
    lineno: int,
    code: CodeType,
    lasti: int,
    module_globals: Optional[dict[str, Any]],
    opts: _Options,
) -> None:
    """Add ``context_line``/``pre_context``/``post_context`` from linecache, if available."""
    source = _source_lines(filename, module_globals, opts)
    if source is None:
        return
    lines, has_long_lines = source
    if lineno > len(lines):
        return
    index = lineno - 1
    n = opts.context_lines
    current = lines[index]
    pre = lines[max(0, index - n) : index]
    post = lines[index + 1 : index + 1 + n]
    if has_long_lines:
        column = _column(code, lasti) if len(current) > MAX_LINE_CHARS else 0
        current = _window(current, column)
        pre = [_window(line, column) for line in pre]
        post = [_window(line, column) for line in post]
    frame["context_line"] = current
    frame["pre_context"] = pre
    frame["post_context"] = post


# filename -> (linecache's list, the same lines without newlines, whether any is too long).
# Stripping every line of a file once, instead of 11 lines per frame per event, is most of
# the speed of exception_interface; linecache's list identity tells when to redo it.
_SOURCE_CACHE: dict[str, tuple[list[str], list[str], bool]] = {}
_SOURCE_CACHE_LIMIT = 256


def _source_lines(
    filename: str, module_globals: Optional[dict[str, Any]], opts: _Options
) -> Optional[tuple[list[str], bool]]:
    try:
        if filename not in opts.checked_files:
            # A file edited since it was cached would show the wrong lines; check once per call.
            opts.checked_files.add(filename)
            linecache.checkcache(filename)
        raw = linecache.getlines(filename, module_globals)
    except Exception:  # a loader's get_source may raise anything
        return None
    if not raw:
        return None
    cached = _SOURCE_CACHE.get(filename)
    if cached is None or cached[0] is not raw:
        stripped = [line.rstrip("\r\n") for line in raw]
        has_long_lines = any(len(line) > MAX_LINE_CHARS for line in stripped)
        cached = (raw, stripped, has_long_lines)
        if len(_SOURCE_CACHE) >= _SOURCE_CACHE_LIMIT:
            _SOURCE_CACHE.clear()
        _SOURCE_CACHE[filename] = cached
    return cached[1], cached[2]


def _column(code: CodeType, lasti: int) -> int:
    """Column of the instruction at ``lasti`` (3.11+), to centre the window on long lines."""
    positions = getattr(code, "co_positions", None)
    if positions is None or lasti < 0:
        return 0
    try:
        position = next(itertools.islice(positions(), lasti // 2, None), None)
    except Exception:
        return 0
    if position is None or position[2] is None:
        return 0
    return int(position[2])


def _window(line: str, column: int) -> str:
    """At most MAX_LINE_CHARS of ``line``, around ``column``; "..." marks what was cut."""
    if len(line) <= MAX_LINE_CHARS:
        return line
    start = max(0, min(column - MAX_LINE_CHARS // 2, len(line) - MAX_LINE_CHARS))
    end = start + MAX_LINE_CHARS
    piece = line[start:end]
    if start > 0:
        piece = "..." + piece[3:]
    if end < len(line):
        piece = piece[:-3] + "..."
    return piece


# --------------------------------------------------------------------------- paths, in_app

_ABS_CACHE: dict[str, str] = {}
_REL_CACHE: dict[tuple[str, Optional[str]], str] = {}
_IN_APP_CACHE: dict[str, bool] = {}


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()  # generated code (many "<string>"-like names) must not grow us forever
    cache[key] = value


def _abs_path(filename: str) -> str:
    cached = _ABS_CACHE.get(filename)
    if cached is None:
        cached = filename if filename.startswith("<") else os.path.abspath(filename)
        _remember(_ABS_CACHE, filename, cached)
    return cached


def _relative_filename(abs_path: str, module: Optional[str]) -> str:
    """The path as the importer sees it (``pkg/mod.py``): stable across machines for grouping.

    First by the module name (``a.b`` lives in ``.../a/b.py`` or ``.../a/b/__init__.py``),
    otherwise relative to the longest ``sys.path`` entry containing it, else the base name.
    """
    key = (abs_path, module)
    cached = _REL_CACHE.get(key)
    if cached is None:
        cached = _compute_relative(abs_path, module)
        _remember(_REL_CACHE, key, cached)
    return cached


def _compute_relative(abs_path: str, module: Optional[str]) -> str:
    if abs_path.startswith("<"):
        return abs_path
    stem = os.path.splitext(abs_path)[0]
    if module and module != "__main__":
        parts = module.split(".")
        for candidate in (parts, [*parts, "__init__"]):
            tail = os.sep + os.sep.join(candidate)
            if stem.endswith(tail):
                return abs_path[len(stem) - len(tail) + 1 :]
    best = ""
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        try:
            root = os.path.abspath(entry or os.curdir)
        except Exception:
            continue
        prefix = root if root.endswith(os.sep) else root + os.sep
        if abs_path.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    if best:
        return abs_path[len(best) :]
    return os.path.basename(abs_path) or abs_path


def _stdlib_prefixes() -> tuple[str, ...]:
    roots = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            roots.add(paths[key])
    roots.add(os.path.dirname(os.__file__))
    prefixes = set()
    for root in roots:
        for variant in (os.path.abspath(root), os.path.realpath(root)):
            prefixes.add(variant.rstrip(os.sep) + os.sep)
    return tuple(sorted(prefixes))


_STDLIB_PREFIXES = _stdlib_prefixes()


def _path_in_app(abs_path: str) -> bool:
    """Stdlib, frozen modules and installed packages are not the application's code."""
    cached = _IN_APP_CACHE.get(abs_path)
    if cached is None:
        if abs_path.startswith("<"):
            cached = not abs_path.startswith("<frozen")
        else:
            cached = not (
                any(marker in abs_path for marker in _THIRD_PARTY_MARKERS)
                or abs_path.startswith(_STDLIB_PREFIXES)
            )
        _remember(_IN_APP_CACHE, abs_path, cached)
    return cached


def _in_app(path_in_app: bool, module: Optional[str], opts: _Options) -> bool:
    """Module prefixes from the options win over the path rule; include wins over exclude."""
    if module:
        if module in opts.include_exact or (
            opts.include_prefixes and module.startswith(opts.include_prefixes)
        ):
            return True
        if module in opts.exclude_exact or (
            opts.exclude_prefixes and module.startswith(opts.exclude_prefixes)
        ):
            return False
    return path_in_app


# --------------------------------------------------------------------------- locals


class _Budget:
    """Estimated JSON bytes still allowed for one frame's vars (Relay's per-frame limit)."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def _frame_vars(f_locals: Mapping[str, Any]) -> dict[str, Any]:
    """Up to MAX_VARS locals as short JSON-safe values, within the frame budget.

    Containers stay containers (bounded) so that a later key-based scrub still sees keys like
    ``password`` inside them; everything else becomes a bounded ``repr``.
    """
    for _attempt in range(2):  # a running frame's locals dict may change under us: retry once
        try:
            items = list(itertools.islice(f_locals.items(), MAX_VARS))
            break
        except Exception:
            continue
    else:
        return {}
    budget = _Budget(VARS_BUDGET)
    out: dict[str, Any] = {}
    for name, value in items:
        if budget.left <= 0:
            break
        out[name if isinstance(name, str) else _safe_repr(name, 200)] = _safe_var(value, 0, budget)
    return out


def _safe_var(value: Any, depth: int, budget: _Budget) -> Any:
    """One value, JSON-safe; charges ``budget`` with its estimated JSON size + 1."""
    if value is None or value is True or value is False:
        budget.left -= 6
        return value
    kind = type(value)
    if kind is int and -(2**63) <= value < 2**63:
        budget.left -= len(str(value)) + 1
        return value
    if kind is float and math.isfinite(value):
        budget.left -= len(repr(value)) + 1
        return value
    if depth < MAX_VAR_DEPTH and isinstance(value, (dict, list, tuple, set, frozenset)):
        try:
            return _safe_container(value, depth, budget)
        except Exception:
            pass  # a subclass with a hostile __iter__/items: fall back to its repr
    return _charge_string(_safe_repr(value, MAX_VAR_CHARS), budget)


def _safe_container(value: Any, depth: int, budget: _Budget) -> Any:
    budget.left -= 3
    if isinstance(value, dict):
        mapping: dict[str, Any] = {}
        for key, item in itertools.islice(value.items(), MAX_VAR_ITEMS):
            if budget.left <= 0:
                break
            name = key if isinstance(key, str) else _safe_repr(key, 200)
            mapping[name] = _safe_var(item, depth + 1, budget)
        return mapping
    sequence: list[Any] = []
    for item in itertools.islice(value, MAX_VAR_ITEMS):
        if budget.left <= 0:
            break
        sequence.append(_safe_var(item, depth + 1, budget))
    return sequence


def _charge_string(text: str, budget: _Budget) -> str:
    """Charge the JSON size of ``text`` (quotes, escapes, UTF-8) and shorten it to fit."""
    room = max(budget.left - 3, 0)
    if len(text) > room:
        text = text[: max(room - 3, 0)] + "..." if room > 3 else "..."
    cost = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    cost += text.count("\\") + text.count('"') + 3
    budget.left -= cost
    return text


def _safe_repr(value: Any, limit: int) -> str:
    """``repr`` that never raises and never returns more than ``limit`` characters.

    Strings and bytes are sliced before ``repr`` so a 100 MB local costs no 100 MB copy.
    """
    try:
        if isinstance(value, (str, bytes, bytearray)):
            text = repr(value[: limit + 1])
        else:
            text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception:
        try:
            text = f"<unrepresentable {type(value).__qualname__}>"
        except Exception:
            text = "<unrepresentable>"
    return _cut(text, limit)
