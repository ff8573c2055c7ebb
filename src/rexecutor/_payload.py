"""The one rule for what a job may carry, applied by every backend before it stores anything.

Every path that writes job values (``Backend.enqueue``, ``enqueue_many``, ``update_job``, and so
the builder and the testing kit) goes through :func:`check_job`, so the three backends accept
and refuse exactly the same jobs. The check costs one C-speed JSON encoding per value: the text
it produces is handed back so that a backend stores it instead of encoding the value again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from rexecutor.errors import PayloadTooLarge, ValidationError

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "EARLIEST",
    "LATEST",
    "MAX_DELAY",
    "MAX_EXECUTOR_NAME",
    "EncodedJob",
    "check_job",
    "check_moment",
    "check_result",
    "check_result_size",
    "check_text",
    "check_values",
    "encode_query_value",
    "storable_delay",
]

#: The largest encoded data, metadata and tags a job may carry together, unless a backend's
#: ``max_payload_bytes`` says otherwise.
DEFAULT_MAX_PAYLOAD_BYTES: Final = 1024 * 1024
#: The earliest and latest moment (UTC) a job may be scheduled at. Python datetimes span years
#: 1 to 9999 in every offset; a day of margin on both ends keeps every stored value readable as
#: an aware datetime whatever offset a reader converts it to.
EARLIEST: Final = datetime(1, 1, 2, tzinfo=UTC)
LATEST: Final = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
#: The longest executor name, in UTF-8 bytes: it is a routing key, not a place for data, and
#: PostgreSQL's claim index must hold it (a B-tree entry holds at most about 2,700 bytes).
MAX_EXECUTOR_NAME: Final = 2048
#: The largest priority and max_attempts every backend can store (a 32-bit signed integer).
_INT32_MAX: Final = 2**31 - 1
#: How much of an offending value an error message quotes.
_QUOTE: Final = 80

#: rexecutor._json.canonical with NaN and Infinity refused: sorted keys, compact, not
#: ASCII-escaped. One encoder for every value, instead of one built per call.
_encode: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


@dataclass(frozen=True, slots=True)
class EncodedJob:
    """A job's values as checked: canonical JSON text of its data, metadata and tags, and its
    ``scheduled_at`` in UTC (None: now)."""

    data: str
    metadata: str
    tags: str
    scheduled_at: datetime | None


def check_job(
    *,
    executor: object,
    data: Any,
    metadata: Any,
    tags: Sequence[object],
    max_attempts: object,
    priority: object,
    scheduled_at: datetime | None,
    limit: int | None,
) -> EncodedJob:
    """Refuse a job that no backend can store faithfully; return its encoded values.

    The rule: the executor name is a non-empty string of at most ``MAX_EXECUTOR_NAME``
    bytes; data, metadata and tags are JSON (no NaN or Infinity, no NUL character, no
    lone surrogate) and together at most ``limit`` bytes; every tag is a string; priority is
    an int from 0 and max_attempts an int from 1 (both below 2**31); scheduled_at is aware and
    within ``EARLIEST`` .. ``LATEST``. Raises ``ValidationError`` (``PayloadTooLarge`` for
    the size) naming the field and what to do.
    """
    name = _check_executor(executor)
    _check_int(max_attempts, "max_attempts", 1, name)
    _check_int(priority, "priority", 0, name)
    data_text, metadata_text, tags_text = check_values(name, data, metadata, tags, limit)
    moment = None if scheduled_at is None else check_moment(scheduled_at, "scheduled_at")
    return EncodedJob(data_text, metadata_text, tags_text, moment)


def check_values(
    name: str, data: Any, metadata: Any, tags: Sequence[object], limit: int | None
) -> tuple[str, str, str]:
    """The data, metadata and tags part of :func:`check_job`: their canonical JSON texts.

    ``name`` (the executor's) is only used in messages.
    """
    for index, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise ValidationError(
                f"tags[{index}] of a job for executor {name!r} is {tag!r}, not a string; "
                "tags must be strings"
            )
        if "\x00" in tag:
            raise ValidationError(
                f"tags[{index}] of a job for executor {name!r} contains a NUL character "
                "(\\x00), which cannot be stored; remove it"
            )
    data_text = _encode_field(data, "data", name)
    metadata_text = _encode_field(metadata, "metadata", name)
    tags_text = _encode_field(list(tags), "tags", name) if tags else "[]"
    try:
        size = _utf8_size(data_text) + _utf8_size(metadata_text) + _utf8_size(tags_text)
    except UnicodeEncodeError:
        for field, text in (("data", data_text), ("metadata", metadata_text), ("tags", tags_text)):
            _refuse_surrogates(text, field, name, tags if field == "tags" else None)
        raise  # pragma: no cover - one of the fields above holds the surrogate
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"a job for executor {name!r} is {size} bytes of JSON (data "
            f"{len(data_text.encode())}, metadata {len(metadata_text.encode())}, tags "
            f"{len(tags_text.encode())}), over the backend's limit of {limit} bytes; store large "
            "content elsewhere and enqueue a reference to it, or raise backend.max_payload_bytes"
        )
    return data_text, metadata_text, tags_text


def check_result(value: Any, name: str, limit: int | None) -> str:
    """The canonical JSON text of a job's result (``ExecutionResult.Done(value)``, already
    dumped through the executor's ``result_type`` when it has one), or ``ValidationError``.

    The rule of :func:`check_values` for one value: JSON with no NaN or Infinity, no NUL
    character, no lone surrogate, and at most ``limit`` bytes (``PayloadTooLarge``). ``name``
    (the executor's) is only used in messages.
    """
    advice = f"{_PLAIN_JSON}, or declare the executor's result_type to store a model or dataclass"
    text = _encode_field(value, RESULT_FIELD, name, advice)
    _refuse_surrogates(text, RESULT_FIELD, name, None)
    return check_result_size(text, name, limit)


def check_result_size(text: str, name: str, limit: int | None) -> str:
    """``text`` (a result's JSON, see :func:`check_result`) if it fits in ``limit`` bytes,
    else ``PayloadTooLarge``."""
    size = len(text.encode())
    if limit is not None and size > limit:
        raise PayloadTooLarge(
            f"the {RESULT_FIELD} of {_whose(name)} is {size} bytes of JSON, over the "
            f"backend's limit of {limit} bytes; store large results elsewhere and return a "
            "reference to them, or raise backend.max_payload_bytes"
        )
    return text


#: How messages about a job's result name it.
RESULT_FIELD: Final = "ExecutionResult.Done(result)"


def check_moment(moment: object, what: str) -> datetime:
    """``moment`` in UTC, or ``ValidationError`` if it is naive or outside what backends store."""
    if not isinstance(moment, datetime):
        raise ValidationError(f"{what} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValidationError(
            f"{what} {moment!r} has no timezone; pass an aware datetime such as "
            "datetime.now(UTC) or attach tzinfo"
        )
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        utc = None  # in UTC it falls in year 0 or 10000
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValidationError(
            f"{what} {moment.isoformat()} is outside the range every backend can store "
            f"({EARLIEST.isoformat()} to {LATEST.isoformat()} in UTC); pick a moment inside it"
        )
    return utc


def check_text(value: object, what: str) -> str:
    """``value`` if it is a string that every backend can store and compare (no NUL, no lone
    surrogate), else ``ValidationError``."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {value!r}")
    if "\x00" in value:
        raise ValidationError(
            f"{what} {_quote(value)} contains a NUL character (\\x00), which cannot be stored; "
            "remove it"
        )
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"{what} {_quote(value)} contains a lone surrogate ({value[exc.start]!r} at "
            f"index {exc.start}), which is not valid Unicode; fix the text's decoding"
        ) from None
    return value


def encode_query_value(value: Any, what: str) -> None:
    """Refuse a query value (already plain JSON) that no stored job could hold."""
    text = _encode_field(value, what, None)
    _refuse_surrogates(text, what, None, None)


#: The largest delay a backend adds to now: keeps now + delay far inside ``LATEST``.
MAX_DELAY: Final = timedelta(days=365 * 1000)


def storable_delay(delay: timedelta) -> timedelta:
    """``delay`` capped at ``MAX_DELAY``, so that a retry or snooze time stays storable."""
    return delay if delay <= MAX_DELAY else MAX_DELAY


# -- details ------------------------------------------------------------------------------------


def _whose(name: str | None) -> str:
    return "a query value" if name is None else f"a job for executor {name!r}"


def _check_executor(executor: object) -> str:
    if (
        type(executor) is str
        and executor.isascii()  # then no lone surrogate, and one byte per character
        and 0 < len(executor) <= MAX_EXECUTOR_NAME
        and "\x00" not in executor
    ):
        return executor
    if not isinstance(executor, str) or not executor:
        raise ValidationError(
            f"a job's executor must be a non-empty string (the executor's name), got {executor!r}"
        )
    check_text(executor, "executor name")
    size = len(executor.encode())
    if size > MAX_EXECUTOR_NAME:
        raise ValidationError(
            f"executor name {_quote(executor)} is {size} bytes long (UTF-8); use a name of at "
            f"most {MAX_EXECUTOR_NAME} bytes"
        )
    return executor


def _check_int(value: object, what: str, lowest: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= _INT32_MAX:
        raise ValidationError(
            f"{what} of a job for executor {name!r} must be an int from {lowest} to "
            f"{_INT32_MAX}, got {value!r}"
        )


#: What to pass instead of a value that is not JSON.
_PLAIN_JSON: Final = (
    "Pass plain JSON values (dict with string keys, list, str, int, float, bool, None)"
)


def _utf8_size(text: str) -> int:
    """The UTF-8 length of ``text``; UnicodeEncodeError for a lone surrogate."""
    # isascii() reads a flag of the string: ASCII text (the common case) is not encoded.
    return len(text) if text.isascii() else len(text.encode())


def _encode_field(value: Any, field: str, name: str | None, advice: str = _PLAIN_JSON) -> str:
    # The commonest values take no trip through the encoder: the text is the same.
    if value is None:
        return "null"
    if type(value) is int:
        return int.__repr__(value)
    try:
        text = _encode(value)
    except ValueError as exc:  # NaN or Infinity (allow_nan=False), or a circular reference
        raise ValidationError(
            f"the {field} of {_whose(name)} cannot be stored as JSON: {exc}. NaN and Infinity "
            "have no JSON form: use None or a string instead"
        ) from None
    except (TypeError, RecursionError) as exc:
        raise ValidationError(
            f"the {field} of {_whose(name)} cannot be stored as JSON: {exc}. {advice}"
        ) from None
    # The encoder escapes NUL as \u0000; the escape also appears, after a backslash, when a
    # string holds the six characters "\u0000" themselves, so confirm before refusing.
    if "\\u0000" in text and _has_nul(value):
        raise ValidationError(
            f"the {field} of {_whose(name)} contains a NUL character (\\x00), which cannot be "
            "stored; remove it or encode the value (for example as base64)"
        )
    return text


def _refuse_surrogates(
    text: str, field: str, name: str | None, tags: Sequence[object] | None
) -> None:
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        if tags is not None:
            for index, tag in enumerate(tags):
                check_text(tag, f"tags[{index}] of {_whose(name)}")
        raise ValidationError(
            f"the {field} of {_whose(name)} contains a lone surrogate "
            f"({text[exc.start]!r} near {_quote(text[max(exc.start - 20, 0) : exc.start + 20])}), "
            "which is not valid Unicode; fix the text's decoding (for example decode bytes "
            "with errors='replace')"
        ) from None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _quote(text: str) -> str:
    shown = text if len(text) <= _QUOTE else text[:_QUOTE] + "..."
    return ascii(shown)
