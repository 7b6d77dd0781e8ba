"""Safe, bounded conversion of arbitrary Python objects into JSON-ready values.

Runs on the worker thread, never on the application's thread, and never raises: whatever users
put in ``extra=``, breadcrumb data or local variables, the worst outcome is a placeholder string.
:func:`safe_value` converts any object into a JSON-safe tree (only exact ``dict``, ``list``,
``str``, ``int``, ``float``, ``bool``, ``None``) within depth, string, item, byte and node
budgets. It never calls user ``__iter__``/``items``/``__len__`` (containers are read through
the built-in base-class methods) and only calls user ``__repr__``, guarded.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
import pathlib
import uuid
from collections import deque
from types import MappingProxyType
from typing import Any, Optional

from .limits import (
    CYCLE,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    I64_MAX,
    I64_MIN,
    KEY_MAX,
    MAX_NESTING,
    NODE_BUDGET,
    RESERVE,
    TRUNCATED_KEY,
    UNBOUNDED,
)

# --- small helpers ---------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON of an already JSON-safe value (see :func:`safe_value`).

    Non-finite floats raise ``ValueError`` (Relay rejects NaN); lone surrogates, which
    ``safe_value`` already replaces, become ``?`` rather than producing invalid UTF-8.
    """
    return _ENCODER.encode(obj).encode("utf-8", "replace")


def truncate(s: str, n: int) -> str:
    """Cut ``s`` to at most ``n`` characters, ending with ``...`` so the cut is visible.

    Characters, not bytes: Relay's string limits count characters.
    """
    if len(s) <= n:
        return s
    if n < 3:
        return s[: max(n, 0)]
    return s[: n - 3] + "..."


def type_name(value: Any) -> str:
    try:
        name = type(value).__name__
        return name if type(name) is str else "object"
    except BaseException:  # a hostile metaclass must not break the worker
        return "object"


def unrepresentable(value: Any) -> str:
    return f"<unrepresentable {type_name(value)}>"


def valid_utf8(s: str) -> str:
    """Replace lone surrogates, which cannot be encoded as UTF-8 and would break the payload."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace").decode("utf-8")
    return s


def safe_str(value: Any, max_length: int = DEFAULT_MAX_STRING) -> str:
    """``str(value)`` that never raises: falls back to ``repr``, then to a placeholder.

    For single fields (tag values, fingerprint parts, user ids) where the user's ``__str__`` is
    the expected rendering. The result is valid UTF-8 and at most ``max_length`` characters.
    """
    if type(value) is str:
        s = value
    else:
        try:
            s = str(value)
            if type(s) is not str:
                s = str.__str__(s)
        except BaseException:  # user __str__ may raise anything; the worker must survive
            try:
                s = repr(value)
                if type(s) is not str:
                    s = str.__str__(s)
            except BaseException:
                s = unrepresentable(value)
    return valid_utf8(truncate(s, max_length))


def utf8_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "replace"))


def _float_cost(v: float) -> int:
    """Upper bound of the bytes Relay counts for a float (+1 separator).

    Measured: Relay counts floats written WITHOUT an exponent (``1e300``: ~302 bytes), and its
    JSON parser may land one ulp off for long or extreme numbers, which then print with 17
    significant digits (``1.5e-300`` costs ~318, not 304). Python's repr uses an exponent only
    below 1e-4 or from 1e16; short plain reprs (<= 15 digits) parse exactly.
    """
    r = repr(v)
    mantissa, e, exp = r.partition("e")
    if not e:
        return len(r) + (1 if len(r) <= 16 else 3)
    sign = 1 if mantissa.startswith("-") else 0
    whole = mantissa.lstrip("-").partition(".")[0]
    digits = 17
    point = len(whole) + int(exp)
    if point >= digits:
        length = point
    elif point <= 0:
        length = 2 - point + digits
    else:
        length = digits + 1
    return sign + length + 1


def _cut_bytes(s: str, nbytes: int) -> str:
    """Longest prefix of ``s`` (with ``...``) whose UTF-8 form fits in ``nbytes``."""
    if utf8_len(s) <= nbytes:
        return s
    if nbytes < 3:
        return ""
    cut = s.encode("utf-8", "replace")[: nbytes - 3].decode("utf-8", "ignore")
    return cut + "..."


# --- safe_value ------------------------------------------------------------------------------


class Walker:
    """One conversion: limits plus the mutable budgets (bytes, nodes) and the cycle path.

    ``remaining`` is an upper-bound estimate of JSON bytes still allowed; every emitted item
    subtracts its cost (key, quotes, separators included), so the result's estimated size never
    exceeds the budget. Cycle detection uses the ids of containers on the current path only, so
    shared (non-cyclic) references are expanded, bounded by the node budget.
    """

    __slots__ = (
        "active",
        "exhausted",
        "flat",
        "marked",
        "max_depth",
        "max_items",
        "max_string",
        "nodes",
        "remaining",
    )

    def __init__(
        self, max_depth: int, max_string: int, max_items: int, max_bytes: Optional[int]
    ) -> None:
        self.max_depth = min(max_depth, MAX_NESTING)
        self.max_string = max(max_string, 0)
        self.max_items = max(max_items, 0)
        self.remaining = UNBOUNDED if max_bytes is None else max_bytes
        self.nodes = NODE_BUDGET
        self.active: set[int] = set()
        self.exhausted = False  # byte or node budget ran out
        self.marked = False  # a marker for that has been placed; outer containers add none
        self.flat = False  # sub-walker rendering a too-deep container: no further stringifying

    # leaves

    def text(self, s: str) -> str:
        if len(s) > self.max_string:
            s = truncate(s, self.max_string)
        if s.isascii():
            n = len(s)
        else:
            try:
                n = len(s.encode("utf-8"))
            except UnicodeEncodeError:
                b = s.encode("utf-8", "replace")
                s = b.decode("utf-8")
                n = len(b)
        cost = n + 3
        room = self.remaining - RESERVE
        if cost > room:
            self.exhausted = True
            s = _cut_bytes(s, max(room - 3, 0))
            cost = utf8_len(s) + 3
        self.remaining -= cost
        return s

    def integer(self, v: int) -> Any:
        if I64_MIN <= v <= I64_MAX:
            self.remaining -= v.bit_length() // 3 + 3
            return v
        try:
            s = int.__repr__(v)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            s = f"<int of {v.bit_length()} bits>"
        return self.text(s)

    def number(self, v: float) -> Any:
        if v != v:
            return self.text("NaN")
        if v in (math.inf, -math.inf):
            return self.text("Infinity" if v > 0 else "-Infinity")
        self.remaining -= _float_cost(v)
        return v

    # dispatch

    def value(self, v: Any, depth: int) -> Any:
        self.nodes -= 1
        if self.nodes < 0 or self.remaining < RESERVE:
            self.exhausted = True
            return self.text("<truncated>")
        t = type(v)
        if t is str:
            return self.text(v)
        if v is None:
            self.remaining -= 5
            return None
        if t is bool:
            self.remaining -= 6
            return v
        if t is int:
            return self.integer(v)
        if t is float:
            return self.number(v)
        if t is dict:
            return self.mapping(v, dict.items(v), len(v), depth)
        if t is list or t is tuple:
            return self.sequence(v, iter(v), len(v), depth)
        try:
            return self.other(v, depth)
        except BaseException:  # hostile objects: anything may raise, even BaseException
            return self.text(unrepresentable(v))

    def other(self, v: Any, depth: int) -> Any:
        if isinstance(v, enum.Enum):
            name = object.__getattribute__(v, "_name_")
            return self.text(f"{type_name(v)}.{safe_str(name, KEY_MAX)}")
        if isinstance(v, str):
            return self.text(str.__str__(v))
        if isinstance(v, int):  # bool is final, so this is an int subclass
            return self.integer(int.__int__(v))
        if isinstance(v, float):
            return self.number(float.__float__(v))
        if isinstance(v, dict):
            return self.mapping(v, dict.items(v), dict.__len__(v), depth)
        if isinstance(v, MappingProxyType):
            return self.mapping(v, iter(v.items()), len(v), depth)
        if isinstance(v, list):
            return self.sequence(v, list.__iter__(v), list.__len__(v), depth)
        if isinstance(v, tuple):
            return self.sequence(v, tuple.__iter__(v), tuple.__len__(v), depth)
        if isinstance(v, (set, frozenset)):
            base: Any = set if isinstance(v, set) else frozenset
            return self.sequence(v, base.__iter__(v), base.__len__(v), depth)
        if isinstance(v, deque):
            return self.sequence(v, deque.__iter__(v), deque.__len__(v), depth)
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = memoryview(v).cast("B")[: self.max_string * 4].tobytes()
            return self.text(raw.decode("utf-8", "replace"))
        if isinstance(v, datetime.datetime):
            return self.text(datetime.datetime.isoformat(v))
        if isinstance(v, datetime.date):
            return self.text(datetime.date.isoformat(v))
        if isinstance(v, datetime.time):
            return self.text(datetime.time.isoformat(v))
        if isinstance(v, datetime.timedelta):
            return self.text(datetime.timedelta.__str__(v))
        if isinstance(v, decimal.Decimal):
            return self.text(decimal.Decimal.__str__(v))
        if isinstance(v, uuid.UUID):
            return self.text(uuid.UUID.__str__(v))
        if isinstance(v, pathlib.PurePath):
            return self.text(pathlib.PurePath.__str__(v))
        # Anything else (dataclasses, arbitrary objects): a bounded repr; never walk attributes.
        r = repr(v)
        return self.text(r if type(r) is str else str.__str__(r))

    # containers

    def key(self, k: Any) -> str:
        if type(k) is str:
            s = k
        elif k is None or isinstance(k, (bool, int, float)):
            s = safe_str(k, KEY_MAX)
        else:
            s = safe_str(k, KEY_MAX) if isinstance(k, str) else _short_repr(k)
        return valid_utf8(truncate(s, KEY_MAX))

    def enter(self, v: Any, depth: int) -> Optional[str]:
        """Return a replacement string if ``v`` must not be walked (cycle, too deep)."""
        if id(v) in self.active:
            return self.text(CYCLE)
        if depth >= self.max_depth:
            return self.text(self.stringify(v))
        return None

    def stringify(self, v: Any) -> str:
        """Bounded JSON text of a container nested too deeply (what Relay would do, bounded)."""
        if self.flat:
            return "{...}" if isinstance(v, (dict, MappingProxyType)) else "[...]"
        sub = Walker(8, 256, 20, min(self.remaining - RESERVE, 1024))
        sub.flat = True
        sub.active = self.active  # a cycle through the outer path is still a cycle
        sub.nodes = self.nodes
        try:
            out = sub.value(v, 0)
        finally:
            self.nodes = sub.nodes
        return out if type(out) is str else dumps(out).decode("utf-8")

    def marker_fits(self, cost: int) -> bool:
        if self.remaining >= cost:
            self.remaining -= cost
            return True
        return False

    def mapping(self, v: Any, items: Any, total: int, depth: int) -> Any:
        replacement = self.enter(v, depth)
        if replacement is not None:
            return replacement
        self.active.add(id(v))
        self.remaining -= 2
        out: dict[str, Any] = {}
        n = 0
        try:
            for k, item in items:
                if n >= self.max_items:
                    note = f"<{max(total - n, 1)} more items>"
                    if self.marker_fits(len(note) + 18):
                        out[TRUNCATED_KEY] = note
                    break
                key = self.key(k)
                cost = utf8_len(key) + 4
                if self.exhausted or self.nodes <= 0 or self.remaining - cost < RESERVE:
                    self.exhausted = True
                    if not self.marked and self.marker_fits(40):
                        self.marked = True
                        out[TRUNCATED_KEY] = "<size limit>"
                    break
                self.remaining -= cost
                out[key] = self.value(item, depth + 1)
                n += 1
        except BaseException:  # e.g. mutated by another thread while iterating
            if self.marker_fits(40):
                out[TRUNCATED_KEY] = "<iteration failed>"
        finally:
            self.active.discard(id(v))
        return out

    def sequence(self, v: Any, it: Any, total: int, depth: int) -> Any:
        replacement = self.enter(v, depth)
        if replacement is not None:
            return replacement
        self.active.add(id(v))
        self.remaining -= 2
        out: list[Any] = []
        try:
            for item in it:
                if len(out) >= self.max_items:
                    note = f"<{max(total - len(out), 1)} more items>"
                    if self.marker_fits(len(note) + 3):
                        out.append(note)
                    break
                if self.exhausted or self.nodes <= 0 or self.remaining < RESERVE:
                    self.exhausted = True
                    if not self.marked and self.marker_fits(20):
                        self.marked = True
                        out.append("<size limit>")
                    break
                out.append(self.value(item, depth + 1))
        except BaseException:
            if self.marker_fits(24):
                out.append("<iteration failed>")
        finally:
            self.active.discard(id(v))
        return out


def _short_repr(value: Any, max_length: int = KEY_MAX) -> str:
    try:
        r = repr(value)
        return truncate(r if type(r) is str else str.__str__(r), max_length)
    except BaseException:
        return unrepresentable(value)


def safe_value(
    value: Any,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_string: int = DEFAULT_MAX_STRING,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_bytes: Optional[int] = None,
) -> Any:
    """Return a JSON-safe copy of ``value``; never raises.

    ``max_depth`` counts container levels including ``value`` itself (``max_depth=1``: a flat
    dict/list); deeper containers become a short JSON-like string. ``max_string`` bounds each
    string (characters), ``max_items`` each container (a ``"<N more items>"`` marker is added).
    ``max_bytes`` bounds the estimated JSON size of the result (Relay's "bag size"), trimming
    strings and containers once it is used up. Cycles become ``"<cycle>"``; objects whose
    ``repr`` raises become ``"<unrepresentable TypeName>"``. See :class:`Walker` for details.
    """
    try:
        walker = Walker(max_depth, max_string, max_items, max_bytes)
        return walker.value(value, 0)
    except BaseException:  # RecursionError, MemoryError...: never let the worker die
        return unrepresentable(value)
