"""Turn an event full of arbitrary Python objects into bytes Relay accepts untouched.

Runs on the worker thread, never on the application's thread, and never raises: whatever users
put in ``extra=``, breadcrumb data or local variables, the worst outcome is a placeholder string.

Three layers:

* :func:`safe_value` converts any object into a JSON-safe tree (only exact ``dict``, ``list``,
  ``str``, ``int``, ``float``, ``bool``, ``None``) within depth, string, item, byte and node
  budgets. It never calls user ``__iter__``/``items``/``__len__`` (containers are read through
  the built-in base-class methods) and only calls user ``__repr__``, guarded.
* :func:`scrub` replaces values under sensitive keys with ``"[Filtered]"``.
* :func:`encode_event` applies both per field, enforces Relay's limits so that the server has
  nothing to trim or reject, and shrinks the event to ``max_bytes``.

Limits below were MEASURED against Relay's own normalizer, PyPI ``sentry_relay`` 0.10.1
(``StoreNormalizer(project_id=1, enable_trimming=True)``), by bisecting for the largest value that
comes back with no ``errors`` and no ``_meta``. Relay's string limits count characters; its
"bag size" limits count an estimate of JSON bytes (UTF-8 string bytes + 2 quotes, number digits,
separators, NOT counting dict keys, ``null`` as 0). We count keys, quotes, separators and
``null`` too, so our estimate is never below Relay's. Relay also silently turns containers nested
deeper than its bag depth into JSON strings (without ``_meta``); we do that ourselves first, with
a bounded representation, so that what we send is what Sentry stores.

Measured (sentry_relay 0.10.1)                                   our constant
  logger: 64 chars; "\\n" invalid                                  LOGGER_MAX
  server_name: copied into tag ``server_name`` -> 200 chars        SERVER_NAME_MAX
  transaction: 200                                                 TRANSACTION_MAX
  logentry.message/formatted: 8192 (+200 allowance)                MESSAGE_MAX
  logentry.params: 512 items, bag 2048 bytes, 3 levels below       PARAMS_MAX_ITEMS, SMALL_BAG_*
  tags: key 200 chars, value 200 chars, value non-blank, no "\\n"    TAG_KEY_MAX, TAG_VALUE_MAX
  environment: 64, not "", ".", "..", "none" (any case), no / \\ \\n \\r \\t \\f   ENVIRONMENT_MAX
  release: 200, not "", ".", "..", "latest" (any case), same chars  RELEASE_MAX
  dist: 64, non-empty                                              DIST_MAX
  user.id/username/name: 128; user.email: 75; ip_address: an IP   USER_FIELD_MAX, USER_EMAIL_MAX
  extra: each top-level value bag 16384 bytes, 5 levels;           EXTRA_VALUE_BYTES, EXTRA_DEPTH
         whole extra 262144 bytes                                  EXTRA_TOTAL_BYTES
  breadcrumbs: no count limit (checked to 2000); message 8192;     BREADCRUMB_MESSAGE_MAX
         type/category 128; data bag 2048 bytes, 3 levels          BREADCRUMB_FIELD_MAX
  frames: 250 per stacktrace; function 512; vars bag 2048, 3 lvls  FRAMES_MAX, FUNCTION_MAX
  exception: type/module 256, value 8192; mechanism.type/source    EXC_TYPE_MAX, EXC_VALUE_MAX
         128, mechanism.data bag 2048; stacktrace.frames non-empty
  threads: name 1024                                               THREAD_NAME_MAX
  contexts: each context bag 8192, 5 levels below; values must be  CONTEXT_BYTES
         objects; trace needs valid trace_id AND span_id; os/runtime
         strings ~4090 (Relay derives fields from them)             CONTEXT_DERIVED_BYTES
  sdk.name: 256
  ints: outside i64 are silently mangled (2**64 -> 0)              sent as strings
  bag budgets count floats by their decimal expansion (1e300: ~302 bytes,
         1.5e-300: ~318)                                           _float_cost
  unknown top-level attributes: invalid_attribute error            moved into ``extra``
No Relay limit was found (to 100000 chars) on frame filename/abs_path/module/context_line, user
data, fingerprint entries or dict keys; we still bound them (generously) to bound event size.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import ipaddress
import json
import math
import pathlib
import re
import time
import uuid
from collections import deque
from types import MappingProxyType
from typing import Any, Callable, Optional

from .levels import parse_level

__all__ = [
    "DEFAULT_DENYLIST",
    "FILTERED",
    "MAX_EVENT_BYTES",
    "PII_DENYLIST",
    "clean_dist",
    "clean_environment",
    "clean_level",
    "clean_logger",
    "clean_release",
    "clean_tag_key",
    "clean_tag_value",
    "dumps",
    "encode_event",
    "safe_str",
    "safe_value",
    "scrub",
    "truncate",
]

# --- limits (see module docstring for the measurements) -------------------------------------

MAX_EVENT_BYTES = 1024 * 1024
LOGGER_MAX = 64
SERVER_NAME_MAX = 200
TRANSACTION_MAX = 200
MESSAGE_MAX = 8192
PARAMS_MAX_ITEMS = 512
TAG_KEY_MAX = 200
TAG_VALUE_MAX = 200
ENVIRONMENT_MAX = 64
RELEASE_MAX = 200
DIST_MAX = 64
USER_FIELD_MAX = 128
USER_EMAIL_MAX = 75
EXTRA_VALUE_BYTES = 16384
EXTRA_TOTAL_BYTES = 262144
EXTRA_DEPTH = 5
SMALL_BAG_BYTES = 2048
SMALL_BAG_DEPTH = 3
CONTEXT_BYTES = 8192
CONTEXT_DERIVED_BYTES = 4000
CONTEXT_DEPTH = 5
BREADCRUMB_MESSAGE_MAX = 8192
BREADCRUMB_FIELD_MAX = 128
FRAMES_MAX = 250
FUNCTION_MAX = 512
EXC_TYPE_MAX = 256
EXC_VALUE_MAX = 8192
MECHANISM_FIELD_MAX = 128
THREAD_NAME_MAX = 1024
SDK_FIELD_MAX = 256
# Our own bounds where Relay has none: keep events small and predictable.
PATH_MAX = 1024
SOURCE_LINE_MAX = 1024
SOURCE_CONTEXT_LINES = 50
FINGERPRINT_MAX_ITEMS = 64
FINGERPRINT_ITEM_MAX = 1024
KEY_MAX = 256

DEFAULT_MAX_DEPTH = EXTRA_DEPTH
DEFAULT_MAX_STRING = 8192
DEFAULT_MAX_ITEMS = 1000
# Bounds total work per safe_value call, so shared references (a DAG expands like a tree)
# cannot make conversion exponential.
NODE_BUDGET = 10_000

FILTERED = "[Filtered]"
_CYCLE = "<cycle>"
_TRUNCATED_KEY = "<truncated>"
# Room kept free in a byte budget so that a truncation marker always still fits.
_RESERVE = 64
_UNBOUNDED = 1 << 62
# Deeper structures would risk RecursionError in this walker and in json's encoder.
_MAX_DEPTH = 64
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1

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


def _type_name(value: Any) -> str:
    try:
        name = type(value).__name__
        return name if type(name) is str else "object"
    except BaseException:  # a hostile metaclass must not break the worker
        return "object"


def _unrepresentable(value: Any) -> str:
    return f"<unrepresentable {_type_name(value)}>"


def _valid_utf8(s: str) -> str:
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
                s = _unrepresentable(value)
    return _valid_utf8(truncate(s, max_length))


def _utf8_len(s: str) -> int:
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
    if _utf8_len(s) <= nbytes:
        return s
    if nbytes < 3:
        return ""
    cut = s.encode("utf-8", "replace")[: nbytes - 3].decode("utf-8", "ignore")
    return cut + "..."


# --- safe_value ------------------------------------------------------------------------------


class _Walker:
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
        self.max_depth = min(max_depth, _MAX_DEPTH)
        self.max_string = max(max_string, 0)
        self.max_items = max(max_items, 0)
        self.remaining = _UNBOUNDED if max_bytes is None else max_bytes
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
        room = self.remaining - _RESERVE
        if cost > room:
            self.exhausted = True
            s = _cut_bytes(s, max(room - 3, 0))
            cost = _utf8_len(s) + 3
        self.remaining -= cost
        return s

    def integer(self, v: int) -> Any:
        if _I64_MIN <= v <= _I64_MAX:
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
        if self.nodes < 0 or self.remaining < _RESERVE:
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
            return self.text(_unrepresentable(v))

    def other(self, v: Any, depth: int) -> Any:
        if isinstance(v, enum.Enum):
            name = object.__getattribute__(v, "_name_")
            return self.text(f"{_type_name(v)}.{safe_str(name, KEY_MAX)}")
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
        return _valid_utf8(truncate(s, KEY_MAX))

    def enter(self, v: Any, depth: int) -> Optional[str]:
        """Return a replacement string if ``v`` must not be walked (cycle, too deep)."""
        if id(v) in self.active:
            return self.text(_CYCLE)
        if depth >= self.max_depth:
            return self.text(self.stringify(v))
        return None

    def stringify(self, v: Any) -> str:
        """Bounded JSON text of a container nested too deeply (what Relay would do, bounded)."""
        if self.flat:
            return "{...}" if isinstance(v, (dict, MappingProxyType)) else "[...]"
        sub = _Walker(8, 256, 20, min(self.remaining - _RESERVE, 1024))
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
                        out[_TRUNCATED_KEY] = note
                    break
                key = self.key(k)
                cost = _utf8_len(key) + 4
                if self.exhausted or self.nodes <= 0 or self.remaining - cost < _RESERVE:
                    self.exhausted = True
                    if not self.marked and self.marker_fits(40):
                        self.marked = True
                        out[_TRUNCATED_KEY] = "<size limit>"
                    break
                self.remaining -= cost
                out[key] = self.value(item, depth + 1)
                n += 1
        except BaseException:  # e.g. mutated by another thread while iterating
            if self.marker_fits(40):
                out[_TRUNCATED_KEY] = "<iteration failed>"
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
                if self.exhausted or self.nodes <= 0 or self.remaining < _RESERVE:
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
        return _unrepresentable(value)


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
    ``repr`` raises become ``"<unrepresentable TypeName>"``. See :class:`_Walker` for details.
    """
    try:
        walker = _Walker(max_depth, max_string, max_items, max_bytes)
        return walker.value(value, 0)
    except BaseException:  # RecursionError, MemoryError...: never let the worker die
        return _unrepresentable(value)


# --- scrubbing -------------------------------------------------------------------------------

DEFAULT_DENYLIST: frozenset[str] = frozenset(
    {
        # Matched as substrings of the normalised key (see scrub): any key containing them.
        "password",
        "passwd",
        "mysql_pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_key",
        "accesskey",
        "private_key",
        "privatekey",
        "authorization",
        "credential",
        "cookie",
        "csrf",
        "xsrf",
        "sessionid",
        "session_id",
        "session_key",
        "signature",
        # Surrounded by "_": whole words only, so "auth" does not hit "author"/"oauth_state"
        # and "session" does not hit "sessions_total"-like counters only by accident.
        "_auth_",
        "_session_",
        "_pwd_",
        "_jwt_",
    }
)
"""Secrets: always filtered. Lower-case; ``-`` written as ``_``."""

PII_DENYLIST: frozenset[str] = frozenset(
    {
        "ip_address",
        "ipaddress",
        "remote_addr",
        "forwarded_for",  # x-forwarded-for
        "real_ip",  # x-real-ip
        "client_ip",
        "_ip_",
        "_email_",
        "email_address",
    }
)
"""Personal data: filtered only when ``send_default_pii`` is False (the default)."""

_NO_PII_DENYLIST = DEFAULT_DENYLIST | PII_DENYLIST
_BEARER = re.compile(r"\s*bearer\s+\S{8,}", re.IGNORECASE)


def _key_matcher(entries: frozenset[str]) -> Callable[[str], bool]:
    """Build a cached predicate: does a (raw) key match any denylist entry?

    Rule: the key is lower-cased, ``-``/space/``.`` become ``_``, and it is wrapped in ``_``;
    it matches if any entry is a substring of that. So plain entries ("token") match anywhere
    ("csrf_token", "accessToken"), and entries written with ``_`` around them ("_auth_") match a
    whole ``_``-separated word only. ``request_id``, ``user_agent``, ``order_id`` never match.
    """
    cache: dict[str, bool] = {}
    ordered = tuple(sorted(entries))

    def matches(key: str) -> bool:
        hit = cache.get(key)
        if hit is None:
            norm = "_" + key.lower().replace("-", "_").replace(" ", "_").replace(".", "_") + "_"
            hit = any(e in norm for e in ordered)
            if len(cache) < 4096:
                cache[key] = hit
        return hit

    return matches


_MATCHERS: dict[frozenset[str], Callable[[str], bool]] = {}


def _matcher_for(entries: frozenset[str]) -> Callable[[str], bool]:
    m = _MATCHERS.get(entries)
    if m is None:
        m = _key_matcher(entries)
        if len(_MATCHERS) < 16:
            _MATCHERS[entries] = m
    return m


def scrub(
    value: Any,
    *,
    send_default_pii: bool = False,
    denylist: frozenset[str] = DEFAULT_DENYLIST,
) -> Any:
    """Copy of ``value`` with values under denylisted keys replaced by ``"[Filtered]"``.

    Walks dicts and lists/tuples at any depth (meant for :func:`safe_value` output, but safe on
    anything: cycles and depth are bounded, other objects are returned as they are). When
    ``send_default_pii`` is False, :data:`PII_DENYLIST` applies too. String values that look like
    ``Bearer <credential>`` are filtered wherever they appear. Never raises.
    """
    entries = denylist if send_default_pii else denylist | PII_DENYLIST
    try:
        return _scrub(value, _matcher_for(frozenset(entries)), 0, set())
    except BaseException:
        return FILTERED  # fail closed: better lose the value than leak it


def _scrub(value: Any, matches: Callable[[str], bool], depth: int, active: set[int]) -> Any:
    if isinstance(value, str):
        if value[:1] in ("b", "B", " ") and _BEARER.match(value):
            return FILTERED
        return value
    if depth > 64:
        return value
    if isinstance(value, dict):
        if id(value) in active:
            return _CYCLE
        active.add(id(value))
        out: dict[Any, Any] = {}
        for k, v in dict.items(value):
            if isinstance(k, str) and matches(k):
                out[k] = FILTERED
            else:
                out[k] = _scrub(v, matches, depth + 1, active)
        active.discard(id(value))
        return out
    if isinstance(value, (list, tuple)):
        if id(value) in active:
            return _CYCLE
        active.add(id(value))
        items = [_scrub(v, matches, depth + 1, active) for v in value]
        active.discard(id(value))
        return items
    return value


# --- single-field cleaners (also used by the event builder) --------------------------------

_TAG_KEY_OK = re.compile(r"[A-Za-z0-9_.:-]+\Z")
_TAG_KEY_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_NAME_BAD = re.compile(r"[/\\\r\n\t\f\v]")


def clean_tag_key(key: Any) -> Optional[str]:
    """A valid tag key, or None when nothing usable is left.

    Sentry documents tag keys as ``[a-zA-Z0-9_.:-]``; Relay rejects at least ``/ @ \\n`` and
    non-ASCII, and trims beyond 200 characters. Valid keys are returned unchanged; other
    characters become ``_``. We keep Relay's 200 rather than the 32 of very old servers, since
    shortening would alter keys users chose deliberately.
    """
    s = key if type(key) is str else safe_str(key, TAG_KEY_MAX)
    if not _TAG_KEY_OK.match(s):
        s = _TAG_KEY_BAD.sub("_", s)
    s = s[:TAG_KEY_MAX]
    return s if s.strip("_") else None


def clean_tag_value(value: Any) -> str:
    """A valid tag value: string, 1..200 characters, no newline (Relay rejects those).

    Newlines become spaces; an empty or whitespace-only value (also rejected) becomes
    ``"<empty>"`` so that the tag's presence is kept.
    """
    s = value if type(value) is str else safe_str(value, TAG_VALUE_MAX * 2)
    if "\n" in s:
        s = s.replace("\r\n", " ").replace("\n", " ")
    s = truncate(_valid_utf8(s), TAG_VALUE_MAX)
    return s if s.strip() else "<empty>"


def clean_logger(name: Any) -> str:
    """Logger name: at most 64 characters, newlines replaced (Relay rejects them)."""
    s = name if type(name) is str else safe_str(name, LOGGER_MAX)
    if "\n" in s or "\r" in s:
        s = s.replace("\r", " ").replace("\n", " ")
    return truncate(_valid_utf8(s), LOGGER_MAX)


def _clean_name(value: Any, max_len: int, reserved: str) -> Optional[str]:
    if value is None:
        return None
    s = value if type(value) is str else safe_str(value, max_len * 2)
    s = _NAME_BAD.sub("-", _valid_utf8(s).strip()).strip()
    if s in ("", ".", "..") or s.lower() == reserved:
        return None
    return s


def clean_environment(value: Any) -> Optional[str]:
    """A valid environment or None.

    Relay rejects ``/ \\ \\r \\n \\t \\f``, ``.``, ``..``, ``none`` (any case), empty and > 64
    characters. Forbidden characters become ``-``, surrounding whitespace is stripped, and an
    over-long name is truncated (it is only a label); None if nothing valid remains.
    """
    s = _clean_name(value, ENVIRONMENT_MAX, "none")
    if s is None:
        return None
    return _clean_name(s[:ENVIRONMENT_MAX], ENVIRONMENT_MAX, "none")


def clean_release(value: Any) -> Optional[str]:
    """A valid release or None.

    Same character rules as environments (``latest`` is reserved instead of ``none``), at most
    200 characters. An over-long release gives None rather than a truncated one: a cut-off
    version string would silently create a different, bogus release in Sentry.
    """
    s = _clean_name(value, RELEASE_MAX, "latest")
    if s is None or len(s) > RELEASE_MAX:
        return None
    return s


def clean_dist(value: Any) -> Optional[str]:
    """A valid ``dist`` (non-empty, at most 64 characters, same characters as release) or None."""
    s = _clean_name(value, DIST_MAX, "\0")
    if s is None or len(s) > DIST_MAX:
        return None
    return s


def clean_level(level: Any) -> str:
    """Sentry level name for a level name or ``logging`` number; unknown values give "error".

    Relay accepts only fatal/error/warning/info/debug (lower case; "warn" is invalid). The
    mapping itself lives in :mod:`sentry_log_handler.levels`, shared with every front door;
    here, on the worker, an unknown value (from ``before_send``, say) must not raise.
    """
    if isinstance(level, float) and level == level and abs(level) < 2**62:
        level = int(level)
    try:
        return parse_level(level)
    except (ValueError, TypeError):
        return "error"


# --- encode_event ----------------------------------------------------------------------------


def _text(value: Any, max_len: int) -> Optional[str]:
    """A plain string field: None stays None (field dropped), anything else becomes text."""
    if value is None:
        return None
    if type(value) is str:
        if len(value) <= max_len:
            return value if value.isascii() else _valid_utf8(value)
        return _valid_utf8(truncate(value, max_len))
    return safe_str(value, max_len)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _bag(value: Any, max_bytes: int, depth: int, *, max_string: int = DEFAULT_MAX_STRING) -> Any:
    return safe_value(value, max_depth=depth, max_string=max_string, max_bytes=max_bytes)


def _object_bag(value: Any, max_bytes: int, depth: int) -> dict[str, Any]:
    """A bag that Relay requires to be an object (breadcrumb data, vars, contexts)."""
    if not isinstance(value, (dict, MappingProxyType)):
        value = {"value": value}
    out = _bag(value, max_bytes, depth + 1)
    return out if type(out) is dict else {"value": out}


def _timestamp(value: Any) -> Optional[float]:
    """Epoch seconds for a number, datetime or RFC 3339 string; None if unusable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            f = float(value)
            return f if math.isfinite(f) and f >= 0 else None
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return datetime.datetime.timestamp(value)
    except BaseException:
        return None
    return None


def _flag(value: Any) -> Optional[bool]:
    return value if type(value) is bool else None


def _uint(value: Any) -> Optional[int]:
    if type(value) is int and 0 <= value <= _I64_MAX:
        return value
    return None


def _values(value: Any) -> list[Any]:
    """The list inside ``{"values": [...]}`` or a bare list (both forms are accepted)."""
    if isinstance(value, dict):
        value = value.get("values")
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


_FRAME_STR_FIELDS = {
    "filename": PATH_MAX,
    "abs_path": PATH_MAX,
    "module": PATH_MAX,
    "package": PATH_MAX,
    "platform": 64,
    "instruction_addr": 64,
    "function": FUNCTION_MAX,
    "raw_function": FUNCTION_MAX,
    "context_line": SOURCE_LINE_MAX,
}


class _Ctx:
    """Per-event options passed down the field cleaners."""

    __slots__ = ("matches", "pii")

    def __init__(self, send_default_pii: bool) -> None:
        self.pii = send_default_pii
        self.matches = _matcher_for(DEFAULT_DENYLIST if send_default_pii else _NO_PII_DENYLIST)

    def scrub(self, value: Any) -> Any:
        try:
            return _scrub(value, self.matches, 0, set())
        except BaseException:
            return FILTERED


def _frame(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    # Driven by the keys present (a frame has few), since this runs for every frame.
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        limit = _FRAME_STR_FIELDS.get(key)
        if limit is not None:
            out[key] = _text(value, limit)
        elif key == "lineno" or key == "colno":
            _put(out, key, _uint(value))
        elif key == "in_app":
            _put(out, key, _flag(value))
        elif key == "pre_context" or key == "post_context":
            if isinstance(value, (list, tuple)):
                out[key] = [
                    line
                    if type(line) is str and len(line) <= SOURCE_LINE_MAX and line.isascii()
                    else _text(line, SOURCE_LINE_MAX) or ""
                    for line in value[-SOURCE_CONTEXT_LINES:]
                ]
        elif key == "vars":
            out[key] = ctx.scrub(_object_bag(value, SMALL_BAG_BYTES, SMALL_BAG_DEPTH))
    if not out:
        out["function"] = "?"
    return out


def _stacktrace(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    frames = raw.get("frames")
    if not isinstance(frames, (list, tuple)):
        return None
    if len(frames) > FRAMES_MAX:
        # Keep the outermost and the innermost frames: where it started and where it failed.
        half = FRAMES_MAX // 2
        frames = list(frames[:half]) + list(frames[-(FRAMES_MAX - half) :])
    cleaned = [f for f in (_frame(f, ctx) for f in frames) if f is not None]
    if not cleaned:
        return None  # Relay rejects an empty frames list
    return {"frames": cleaned}


def _mechanism(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {"type": _text(raw.get("type"), MECHANISM_FIELD_MAX) or "generic"}
    _put(out, "handled", _flag(raw.get("handled")))
    _put(out, "synthetic", _flag(raw.get("synthetic")))
    _put(out, "is_exception_group", _flag(raw.get("is_exception_group")))
    _put(out, "source", _text(raw.get("source"), MECHANISM_FIELD_MAX))
    _put(out, "description", _text(raw.get("description"), MESSAGE_MAX))
    _put(out, "help_link", _text(raw.get("help_link"), PATH_MAX))
    _put(out, "exception_id", _uint(raw.get("exception_id")))
    _put(out, "parent_id", _uint(raw.get("parent_id")))
    if raw.get("data") is not None:
        out["data"] = _object_bag(raw.get("data"), SMALL_BAG_BYTES, SMALL_BAG_DEPTH)
    return out


def _thread_id(value: Any) -> Any:
    if type(value) is int and 0 <= value <= _I64_MAX:
        return value
    return _text(value, USER_FIELD_MAX)


def _exception(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            item = {"type": _type_name(item), "value": item}
        out: dict[str, Any] = {}
        _put(out, "type", _text(item.get("type"), EXC_TYPE_MAX))
        _put(out, "value", _text(item.get("value"), EXC_VALUE_MAX))
        if "type" not in out and "value" not in out:
            out["type"] = "Exception"  # Relay requires type or value
        _put(out, "module", _text(item.get("module"), EXC_TYPE_MAX))
        _put(out, "thread_id", _thread_id(item.get("thread_id")))
        _put(out, "mechanism", _mechanism(item.get("mechanism")))
        _put(out, "stacktrace", _stacktrace(item.get("stacktrace"), ctx))
        values.append(out)
    return {"values": values} if values else None


def _threads(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            continue
        out: dict[str, Any] = {}
        _put(out, "id", _thread_id(item.get("id")))
        _put(out, "name", _text(item.get("name"), THREAD_NAME_MAX))
        for key in ("current", "crashed", "main"):
            _put(out, key, _flag(item.get(key)))
        _put(out, "stacktrace", _stacktrace(item.get("stacktrace"), ctx))
        values.append(out)
    return {"values": values} if values else None


def _breadcrumbs(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    values = []
    for item in _values(raw):
        if not isinstance(item, dict):
            item = {"message": item}
        out: dict[str, Any] = {}
        _put(out, "timestamp", _timestamp(item.get("timestamp")))
        _put(out, "type", _text(item.get("type"), BREADCRUMB_FIELD_MAX))
        _put(out, "category", _text(item.get("category"), BREADCRUMB_FIELD_MAX))
        if item.get("level") is not None:
            out["level"] = clean_level(item.get("level"))
        _put(out, "message", _text(item.get("message"), BREADCRUMB_MESSAGE_MAX))
        if item.get("data") is not None:
            out["data"] = ctx.scrub(_object_bag(item.get("data"), SMALL_BAG_BYTES, SMALL_BAG_DEPTH))
        values.append(out)
    return {"values": values} if values else None


_HEX32 = re.compile(r"[0-9a-fA-F]{32}\Z")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}\Z")
_UNSCRUBBED_CONTEXTS = ("os", "runtime")


def _contexts(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for name, value in list(raw.items())[:DEFAULT_MAX_ITEMS]:
        key = _text(name, KEY_MAX) or "context"
        budget = CONTEXT_DERIVED_BYTES if key in _UNSCRUBBED_CONTEXTS else CONTEXT_BYTES
        bag = _object_bag(value, budget, CONTEXT_DEPTH)
        if key == "trace":
            trace_id, span_id = bag.get("trace_id"), bag.get("span_id")
            if not (
                isinstance(trace_id, str)
                and _HEX32.match(trace_id)
                and isinstance(span_id, str)
                and _HEX16.match(span_id)
            ):
                continue  # Relay rejects a trace context without valid ids
            parent = bag.get("parent_span_id")
            if parent is not None and not (isinstance(parent, str) and _HEX16.match(parent)):
                del bag["parent_span_id"]
        if "type" in bag and not isinstance(bag["type"], str):
            bag["type"] = str(bag["type"])
        out[key] = bag if key in _UNSCRUBBED_CONTEXTS else ctx.scrub(bag)
    return out or None


def _user(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for name, value in list(raw.items())[:DEFAULT_MAX_ITEMS]:
        if value is None:
            continue
        key = _text(name, KEY_MAX) or "user"
        if key == "ip_address":
            ip = _text(value, 64)
            if ctx.pii and ip is not None and _valid_ip(ip):
                out[key] = ip
        elif key == "email":
            out[key] = _text(value, USER_EMAIL_MAX)
        elif key in ("id", "username", "name", "segment"):
            out[key] = _text(value, USER_FIELD_MAX)
        else:
            out[key] = _bag(value, CONTEXT_BYTES, CONTEXT_DEPTH)
    return ctx.scrub(out) if out else None


def _valid_ip(text: str) -> bool:
    if text == "{{auto}}":
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _tags(raw: Any) -> Optional[dict[str, str]]:
    if isinstance(raw, dict):
        pairs: Any = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        pairs = [p for p in raw if isinstance(p, (list, tuple)) and len(p) == 2]
    else:
        return None
    out: dict[str, str] = {}
    for k, v in pairs[:DEFAULT_MAX_ITEMS]:
        key = clean_tag_key(k)
        if key is not None and v is not None:
            out[key] = clean_tag_value(v)
    return out or None


def _logentry(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        raw = {"formatted": raw}
    out: dict[str, Any] = {}
    _put(out, "message", _text(raw.get("message"), MESSAGE_MAX))
    _put(out, "formatted", _text(raw.get("formatted"), MESSAGE_MAX))
    params = raw.get("params")
    if params is not None:
        if not isinstance(params, (dict, MappingProxyType)):
            if not isinstance(params, (list, tuple)):
                params = [params]
            params = list(params[:PARAMS_MAX_ITEMS])
        out["params"] = safe_value(
            params,
            max_depth=SMALL_BAG_DEPTH + 1,
            max_items=PARAMS_MAX_ITEMS,
            max_bytes=SMALL_BAG_BYTES,
        )
    if "message" not in out and "formatted" not in out:
        return None
    return out


def _fingerprint(raw: Any) -> Optional[list[str]]:
    if raw is None:
        return None
    if not isinstance(raw, (list, tuple)):
        raw = [raw]
    return [safe_str(part, FINGERPRINT_ITEM_MAX) for part in raw[:FINGERPRINT_MAX_ITEMS]]


def _sdk(raw: Any) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    _put(out, "name", _text(raw.get("name"), SDK_FIELD_MAX))
    _put(out, "version", _text(raw.get("version"), SDK_FIELD_MAX))
    integrations = raw.get("integrations")
    if isinstance(integrations, (list, tuple)):
        out["integrations"] = [safe_str(i, SDK_FIELD_MAX) for i in integrations[:100]]
    packages = raw.get("packages")
    if isinstance(packages, (list, tuple)):
        out["packages"] = [
            {
                "name": safe_str(p.get("name"), SDK_FIELD_MAX),
                "version": safe_str(p.get("version"), SDK_FIELD_MAX),
            }
            for p in packages[:100]
            if isinstance(p, dict)
        ]
    return out if "name" in out and "version" in out else None


def _modules(raw: Any) -> Optional[dict[str, str]]:
    if not isinstance(raw, dict):
        return None
    return {
        safe_str(k, KEY_MAX): safe_str(v, SDK_FIELD_MAX)
        for k, v in list(raw.items())[:DEFAULT_MAX_ITEMS]
    }


def _request(raw: Any, ctx: _Ctx) -> Optional[dict[str, Any]]:
    if not isinstance(raw, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("url", "method", "query_string"):
        _put(out, key, _text(raw.get(key), PATH_MAX))
    for key in ("headers", "cookies", "env", "data"):
        if raw.get(key) is not None:
            value = ctx.scrub(_bag(raw.get(key), CONTEXT_BYTES, CONTEXT_DEPTH))
            if key != "data" and not isinstance(value, dict):
                continue
            if key == "headers":  # Relay wants header values to be strings
                value = {k: v if isinstance(v, str) else safe_str(v) for k, v in value.items()}
            out[key] = value
    return out or None


def _extra(raw: dict[str, Any], ctx: _Ctx) -> dict[str, Any]:
    """Each value in its own 16 KiB bag; then the whole within 256 KiB, largest values first."""
    out: dict[str, Any] = {}
    total = 2
    sizes: dict[str, int] = {}
    for name, value in raw.items():
        if len(out) >= DEFAULT_MAX_ITEMS:
            break
        key = _text(name, KEY_MAX) or "extra"
        walker = _Walker(EXTRA_DEPTH, DEFAULT_MAX_STRING * 2, DEFAULT_MAX_ITEMS, EXTRA_VALUE_BYTES)
        try:
            safe = walker.value(value, 0)
        except BaseException:
            safe = _unrepresentable(value)
        out[key] = safe
        size = EXTRA_VALUE_BYTES - walker.remaining + _utf8_len(key) + 4
        sizes[key] = size
        total += size
    if total > EXTRA_TOTAL_BYTES:
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            note = f"<removed: {sizes[key]} bytes over the extra size limit>"
            total -= sizes[key] - (len(note) + _utf8_len(key) + 6)
            out[key] = note
            if total <= EXTRA_TOTAL_BYTES:
                break
    scrubbed = ctx.scrub(out)
    return scrubbed if isinstance(scrubbed, dict) else {}


# Top-level attributes Relay knows and we clean; anything else goes into extra.
_HANDLED = frozenset(
    {
        "event_id",
        "timestamp",
        "start_timestamp",
        "platform",
        "level",
        "logger",
        "logentry",
        "message",
        "transaction",
        "server_name",
        "release",
        "dist",
        "environment",
        "tags",
        "user",
        "request",
        "contexts",
        "breadcrumbs",
        "exception",
        "threads",
        "extra",
        "fingerprint",
        "sdk",
        "modules",
        "type",
    }
)
_EVENT_TYPES = frozenset({"default", "error"})


def _normalize(event: Any, ctx: _Ctx) -> dict[str, Any]:
    if not isinstance(event, dict):
        event = {"extra": {"event": event}}
    out: dict[str, Any] = {}
    event_id = event.get("event_id")
    if not (isinstance(event_id, str) and _HEX32.match(event_id)):
        event_id = uuid.uuid4().hex
    out["event_id"] = event_id.lower()
    ts = _timestamp(event.get("timestamp"))
    out["timestamp"] = ts if ts is not None else time.time()
    out["platform"] = _text(event.get("platform"), 64) or "python"
    out["level"] = clean_level(event.get("level", "error"))
    if event.get("type") in _EVENT_TYPES:
        out["type"] = event["type"]
    if event.get("logger") is not None:
        out["logger"] = clean_logger(event["logger"])
    logentry = event.get("logentry")
    if logentry is None and event.get("message") is not None:
        logentry = {"formatted": event["message"]}
    if logentry is not None:
        _put(out, "logentry", _logentry(logentry))
    _put(out, "transaction", _text(event.get("transaction"), TRANSACTION_MAX))
    if event.get("server_name") is not None:
        out["server_name"] = clean_tag_value(event["server_name"])
    _put(out, "release", clean_release(event.get("release")))
    _put(out, "dist", clean_dist(event.get("dist")))
    _put(out, "environment", clean_environment(event.get("environment")))
    _put(out, "tags", _tags(event.get("tags")))
    _put(out, "user", _user(event.get("user"), ctx))
    _put(out, "request", _request(event.get("request"), ctx))
    _put(out, "contexts", _contexts(event.get("contexts"), ctx))
    _put(out, "breadcrumbs", _breadcrumbs(event.get("breadcrumbs"), ctx))
    _put(out, "exception", _exception(event.get("exception"), ctx))
    _put(out, "threads", _threads(event.get("threads"), ctx))
    _put(out, "fingerprint", _fingerprint(event.get("fingerprint")))
    _put(out, "sdk", _sdk(event.get("sdk")))
    _put(out, "modules", _modules(event.get("modules")))
    extra_raw = event.get("extra")
    extra: dict[str, Any] = dict(extra_raw) if isinstance(extra_raw, dict) else {}
    if extra_raw is not None and not isinstance(extra_raw, dict):
        extra["extra"] = extra_raw
    for key in event:
        if key not in _HANDLED and key not in extra:
            extra[key if type(key) is str else safe_str(key, KEY_MAX)] = event[key]
    if extra:
        out["extra"] = _extra(extra, ctx)
    return out


def encode_event(
    event: dict[str, Any],
    *,
    max_bytes: int = MAX_EVENT_BYTES,
    send_default_pii: bool = False,
) -> bytes:
    """The worker's one step from a built event dict to the event item's payload bytes.

    Every field is made JSON-safe, valid for Relay and within its limits (so the server trims
    and rejects nothing), sensitive values are scrubbed, and the result is at most ``max_bytes``
    (trimming extra, then breadcrumbs, then frames, then vars; message, level and event_id are
    kept to the end). The common small event is serialised exactly once. Never raises.
    """
    try:
        ctx = _Ctx(send_default_pii)
        normalized = _normalize(event, ctx)
        data = dumps(normalized)
        if len(data) <= max_bytes:
            return data
        return _shrink(normalized, max_bytes)
    except BaseException:  # last line of defence: still send something true and small
        return _last_resort(event, max_bytes)


# --- shrinking to max_bytes ------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(dumps(value))


def _stacks(event: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for part in ("exception", "threads"):
        for item in event.get(part, {}).get("values", []):
            stack = item.get("stacktrace")
            if stack is not None:
                found.append(stack)
    return found


def _shrink(event: dict[str, Any], max_bytes: int) -> bytes:
    """Trim in order of least value lost until the event fits; see encode_event."""
    total = _size(event)
    extra = event.get("extra")
    if extra:
        sizes = {k: _size(v) for k, v in extra.items()}
        for key in sorted(sizes, key=sizes.__getitem__, reverse=True):
            if total <= max_bytes:
                break
            note = "<removed: event size limit>"
            total -= sizes[key] - (len(note) + 2)
            extra[key] = note
        total = _size(event)

    crumbs = event.get("breadcrumbs", {}).get("values")
    if crumbs and total > max_bytes:
        sizes_list = [_size(c) + 1 for c in crumbs]
        drop = 0
        while drop < len(crumbs) and total > max_bytes:  # oldest first
            total -= sizes_list[drop]
            drop += 1
        del crumbs[:drop]
        if not crumbs:
            del event["breadcrumbs"]
        total = _size(event)

    if total > max_bytes:
        total = _trim_frames(event, total, max_bytes, keep=10)
    if total > max_bytes:
        for stack in _stacks(event):
            for frame in stack["frames"]:
                for key in ("vars", "pre_context", "post_context"):
                    frame.pop(key, None)
        total = _size(event)
    if total > max_bytes:
        total = _trim_frames(event, total, max_bytes, keep=2)
    if total <= max_bytes:
        return dumps(event)
    return _last_resort(event, max_bytes)


def _trim_frames(event: dict[str, Any], total: int, max_bytes: int, keep: int) -> int:
    """Remove middle frames of the longest stacks, keeping ``keep`` outer+inner frames."""
    for stack in sorted(_stacks(event), key=lambda s: len(s["frames"]), reverse=True):
        frames = stack["frames"]
        while len(frames) > keep and total > max_bytes:
            total -= _size(frames.pop(len(frames) // 2)) + 1
    return _size(event)


def _last_resort(event: Any, max_bytes: int) -> bytes:
    """Identity and message only, cut down until it fits; never raises."""
    try:
        source: dict[str, Any] = event if isinstance(event, dict) else {}
        event_id = source.get("event_id")
        if not (isinstance(event_id, str) and _HEX32.match(event_id)):
            event_id = uuid.uuid4().hex
        ts = _timestamp(source.get("timestamp"))
        minimal: dict[str, Any] = {
            "event_id": event_id.lower(),
            "timestamp": ts if ts is not None else time.time(),
            "platform": "python",
            "level": clean_level(source.get("level", "error")),
        }
        if source.get("logger") is not None:
            minimal["logger"] = clean_logger(source["logger"])
        _put(minimal, "release", clean_release(source.get("release")))
        _put(minimal, "environment", clean_environment(source.get("environment")))
        logentry = _logentry(source.get("logentry") or {"formatted": source.get("message")})
        if logentry is not None:
            logentry.pop("params", None)
            minimal["logentry"] = logentry
        data = dumps(minimal)
        limit = MESSAGE_MAX
        while len(data) > max_bytes and "logentry" in minimal and limit > 16:
            limit //= 2
            for key in ("message", "formatted"):
                if key in minimal["logentry"]:
                    minimal["logentry"][key] = truncate(minimal["logentry"][key], limit)
            data = dumps(minimal)
        for key in ("logentry", "environment", "release", "logger", "platform", "timestamp"):
            if len(data) <= max_bytes:
                break
            minimal.pop(key, None)
            data = dumps(minimal)
        if len(data) <= max_bytes:
            return data
    except BaseException:
        pass
    fallback = b'{"event_id":"' + uuid.uuid4().hex.encode() + b'"}'
    return fallback if len(fallback) <= max_bytes else b"{}"[: max(max_bytes, 0)]
