"""Sentry's size and shape limits, as Relay enforces them: one table, one place.

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
  frames: 250 per stacktrace; function 512 (0.8: 256)             FRAMES_MAX, FUNCTION_MAX
         vars bag 2048, 3 levels
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
FUNCTION_MAX = 256  # Relay 0.10 allows 512; older Relays (sentry-relay 0.8) cut at 256
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
CYCLE = "<cycle>"
TRUNCATED_KEY = "<truncated>"
# Room kept free in a byte budget so that a truncation marker always still fits.
RESERVE = 64
UNBOUNDED = 1 << 62
# Deeper structures would risk RecursionError in this walker and in json's encoder.
MAX_NESTING = 64
I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
