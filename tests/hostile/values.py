"""Hostile values and failures for the hostile-input suite, described by short recipes.

A recipe prints in one line (``Value('string', 5000000)``), so a failing example stays readable
even when the value it builds is 5 MB of text. Each recipe knows what issue 11 requires of it:
``REFUSE`` (enqueue must raise ``ValidationError`` naming the field), ``ACCEPT`` (enqueue must
store it, and it must come back unchanged) or ``EITHER`` (a backend may refuse it clearly or
store it faithfully; both are correct).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

REFUSE, ACCEPT, EITHER = "refuse", "accept", "either"
#: ``Backend.max_payload_bytes``: data, metadata and tags together must stay within it.
PAYLOAD_LIMIT = 1024 * 1024
#: What issue 11 allows a stored error text or traceback to grow to ("say 64 KiB"), with room
#: for the marker that says it was cut.
TEXT_CAP = 64 * 1024 + 1024


def worst(*verdicts: str) -> str:
    """The strictest of several verdicts: one field that must be refused refuses the job."""
    for verdict in (REFUSE, EITHER):
        if verdict in verdicts:
            return verdict
    return ACCEPT


def bad_text(text: str) -> bool:
    """Whether ``text`` holds a character no backend can store: NUL or a lone surrogate."""
    return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _walk(value: Any) -> list[Any]:
    """Every leaf and key of a JSON-like value (iterative: values may nest 500 deep)."""
    out: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            out.append(item)
    return out


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for item in level
            if isinstance(item, list | dict)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def value_verdict(value: Any) -> str:
    """What enqueue must do with ``value`` as job data or metadata (size aside)."""
    leaves = _walk(value)
    if any(isinstance(x, str) and bad_text(x) for x in leaves):
        return REFUSE
    if any(isinstance(x, float) and not math.isfinite(x) for x in leaves):
        return REFUSE
    huge = any(isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 2**63 for x in leaves)
    if huge or _depth(value) > 100:
        return EITHER  # JSON allows both; a backend may also refuse them, clearly
    return ACCEPT


def size_verdict(data: Any, metadata: Any, tags: list[str]) -> str:
    """What the payload limit requires of a job this large (the exact accounting of tags and
    separators is the backend's; only clear cases are judged)."""
    try:
        size = len(json.dumps([data, metadata, tags], ensure_ascii=False).encode())
    except (ValueError, RecursionError, UnicodeEncodeError):
        return EITHER  # not JSON at all: value_verdict already judged it
    if size > PAYLOAD_LIMIT * 1.1:
        return REFUSE
    if size > PAYLOAD_LIMIT * 0.9:
        return EITHER
    return ACCEPT


# -- strings ---------------------------------------------------------------------------------

_hostile_char = st.one_of(
    st.characters(),
    st.just("\x00"),
    st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates: hypothesis never makes them itself
    st.sampled_from(["<", ">", "&", '"', "'", "\u2028", "\ufeff", "\U0010ffff", "\\", "\n"]),
)
#: Short strings with NUL, lone surrogates, markup and other awkward characters.
hostile_text = st.text(_hostile_char, max_size=24)

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
    hostile_text,
)
#: Small generated JSON values whose strings (and keys) are hostile.
hostile_json = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=10,
)


@dataclass(frozen=True)
class Value:
    """A job data or metadata value: ``kind`` and one parameter (a size, a depth, a number or
    the small generated value itself)."""

    kind: str
    param: Any = None

    def build(self) -> Any:
        """The value itself (built fresh each time: the big ones are not kept in the recipe)."""
        match self.kind:
            case "json" | "number":
                return self.param
            case "nul":
                return {"note": "before\x00after"}
            case "nul_key":
                return {"\x00": 1}
            case "surrogate":
                return ["fine", "half a pair: \ud83d"]
            case "surrogate_key":
                return {"\udfff": 1}
            case "nested_float":
                return {"reading": [1.5, self.param]}
            case "string":
                return "x" * self.param
            case "deep":
                value: Any = "bottom"
                for _ in range(self.param):
                    value = [value]
                return value
        raise AssertionError(f"unknown value recipe {self.kind!r}")


_special_floats = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, 5e-324])
_huge_ints = st.sampled_from([2**64, 2**64 + 1, -(2**64) - 1, 2**200, -(10**300)])

#: Job data or metadata: mostly generated, plus every hostile case issue 11 names.
values = st.one_of(
    st.builds(Value, st.just("json"), hostile_json),
    st.sampled_from(
        [
            Value("nul"),
            Value("nul_key"),
            Value("surrogate"),
            Value("surrogate_key"),
            Value("string", 1_000_000),  # 1 MB: within the limit on its own
            Value("string", 1_200_000),  # over the 1 MiB limit
            Value("string", 5_000_000),
            Value("deep", 200),
            Value("deep", 500),
        ]
    ),
    st.builds(Value, st.just("number"), _special_floats | _huge_ints),
    st.builds(Value, st.just("nested_float"), _special_floats),
)


@dataclass(frozen=True)
class Tags:
    """A job's tags: none, a few generated ones, one huge tag, or very many."""

    kind: str
    param: Any = None

    def build(self) -> list[str]:
        """The tags themselves."""
        match self.kind:
            case "none":
                return []
            case "texts":
                return list(self.param)
            case "huge":
                return ["t" * self.param]
            case "many":
                return [f"tag-{i}" for i in range(self.param)]
        raise AssertionError(f"unknown tags recipe {self.kind!r}")

    def verdict(self) -> str:
        """What enqueue must do with these tags (size aside). Issue 11 sets no limit on how
        many tags a job has: a backend may store 2,000 or refuse them clearly."""
        if any(bad_text(t) for t in self.build()):
            return REFUSE
        return EITHER if self.kind == "many" else ACCEPT


tag_lists = st.one_of(
    st.just(Tags("none")),
    st.builds(Tags, st.just("texts"), st.lists(hostile_text, max_size=4).map(tuple)),
    st.sampled_from([Tags("huge", 5 * 1024 * 1024), Tags("many", 2_000)]),
)


#: How near the ends of ``datetime``'s range a backend may refuse a moment it could store.
EDGE = timedelta(days=2)


@dataclass(frozen=True)
class Moment:
    """A ``scheduled_at``: a wall-clock time with a UTC offset in minutes (-23:59..+23:59)."""

    wall: datetime
    offset_minutes: int

    def build(self) -> datetime:
        """The aware datetime."""
        return self.wall.replace(tzinfo=timezone(timedelta(minutes=self.offset_minutes)))

    def verdict(self) -> str:
        """Refused if it is no datetime in UTC (UTC year 0 or 10000); stored if it is well
        inside the range. Within two days of either end a backend may refuse it too, so that
        showing it in any timezone never overflows."""
        try:
            utc = self.build().astimezone(UTC)
        except OverflowError:
            return REFUSE
        lowest, highest = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
        if lowest + EDGE <= utc <= highest - EDGE:
            return ACCEPT
        return EITHER

    def due(self) -> bool:
        """Whether a job scheduled then may run now."""
        return self.build() <= datetime.now(UTC)


_edge_walls = st.sampled_from(
    [
        datetime(1, 1, 1),
        datetime(1, 1, 1, 23, 59, 59, 999999),
        datetime(9999, 12, 31),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
)
moments = st.builds(
    Moment,
    _edge_walls | st.datetimes(),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)


class HostileError(Exception):
    """An exception whose text is whatever the example says (NUL, surrogates, 5 MB...)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def __str__(self) -> str:
        return self.text


class UnprintableError(Exception):
    """An exception that cannot even be described: ``str`` and ``repr`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ of UnprintableError is broken")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of UnprintableError is broken")


@dataclass(frozen=True)
class Failure:
    """How an attempt fails: the exception raised (or returned as ``Error``/``Cancel``)."""

    kind: str
    param: Any = None

    def exception(self) -> BaseException:
        """A fresh exception, raised once so that it carries a traceback."""
        try:
            match self.kind:
                case "text":
                    raise HostileError(self.param)
                case "huge":
                    raise HostileError("e" * 5_000_000)
                case "huge_unicode":
                    raise HostileError("é\x00\udc80" * 2_000_000)
                case "str_raises":
                    raise UnprintableError()
                case "huge_cause":
                    try:
                        raise HostileError("c" * 5_000_000)
                    except HostileError as cause:
                        raise HostileError("a short message, a huge cause") from cause
            raise AssertionError(f"unknown failure recipe {self.kind!r}")
        except (HostileError, UnprintableError) as exc:
            return exc

    def clean_text(self) -> str | None:
        """The text the record must hold verbatim: a short message of printable characters
        (a sanitiser may fairly escape control characters as well as NUL and surrogates)."""
        if self.kind == "text" and self.param.isprintable():
            return str(self.param)
        return None


failures = st.one_of(
    st.builds(Failure, st.just("text"), hostile_text),
    st.sampled_from(
        [
            Failure("huge"),
            Failure("huge_unicode"),
            Failure("str_raises"),
            Failure("huge_cause"),
        ]
    ),
)
