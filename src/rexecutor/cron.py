"""Cron expressions: parsing, validation and computing the next fire time.

A :class:`CronSchedule` is a parsed cron expression bound to an IANA timezone. It
understands the classic five-field form ``minute hour day-of-month month day-of-week``
and a six-field form with a leading ``second`` field, plus the usual ``@daily``-style
macros. Fire times are wall-clock times in the schedule's timezone; :meth:`next_after`
returns them as aware UTC datetimes.

Example:
    >>> from datetime import datetime, UTC
    >>> schedule = CronSchedule.parse("30 9 * * MON-FRI", "Europe/London")
    >>> schedule.next_after(datetime(2024, 7, 5, 12, 0, tzinfo=UTC))
    datetime.datetime(2024, 7, 8, 8, 30, tzinfo=datetime.timezone.utc)

This module uses the standard library only.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rexecutor.errors import ConfigurationError

__all__ = [
    "DEFAULT_CATCH_UP_LIMIT",
    "CatchUpPolicy",
    "CronCatchUp",
    "CronRegistration",
    "CronSchedule",
]

#: What a schedule does at node start about the ticks that passed while no node ran it.
CatchUpPolicy = Literal["skip", "latest", "all"]

#: How many missed ticks ``catch_up="all"`` enqueues at most, unless told otherwise.
DEFAULT_CATCH_UP_LIMIT: Final = 100

# A daylight-saving shift moves wall clocks by at most this much (real zones: 2 hours at
# most), so a backward scan that starts this far ahead of a moment's wall time misses nothing.
_MAX_ZONE_SHIFT = timedelta(hours=3)

_MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES: dict[str, int] = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        start=1,
    )
}
_WEEKDAY_NAMES: dict[str, int] = {
    name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
}

# Days in each month of a leap year: the most any (month, day-of-month) pair can get.
_MAX_DAYS_IN_MONTH: dict[int, int] = {
    month: calendar.monthrange(2000, month)[1] for month in range(1, 13)
}

# One list item: ``*``, ``a`` or ``a-b``, optionally followed by ``/step``.
_ITEM_RE = re.compile(
    r"(?P<start>\*|[0-9]+|[A-Za-z]+)(?:-(?P<end>[0-9]+|[A-Za-z]+))?(?:/(?P<step>[0-9]+))?",
    re.ASCII,
)


@dataclass(frozen=True)
class _FieldSpec:
    """Static description of one cron field: its name, bounds and symbolic names."""

    name: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)


_SECOND = _FieldSpec("second", 0, 59)
_MINUTE = _FieldSpec("minute", 0, 59)
_HOUR = _FieldSpec("hour", 0, 23)
_DAY_OF_MONTH = _FieldSpec("day-of-month", 1, 31)
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _FieldSpec("day-of-week", 0, 7, _WEEKDAY_NAMES)


class _FieldError(Exception):
    """Internal: what is wrong with one field; wrapped into a ConfigurationError."""


def _parse_value(text: str, spec: _FieldSpec) -> int:
    """Turn a number or a symbolic name into an int and check it against the field's range."""
    if text.isdigit():
        value = int(text)
    else:
        named = spec.names.get(text.upper())
        if named is None:
            if spec.names:
                raise _FieldError(f"{spec.name} has no value named {text!r}")
            raise _FieldError(f"{spec.name} value {text!r} is not a number")
        value = named
    if not spec.low <= value <= spec.high:
        raise _FieldError(f"{spec.name} value {value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_item(item: str, spec: _FieldSpec) -> set[int]:
    """Expand one comma-separated item of a field into the set of values it selects."""
    match = _ITEM_RE.fullmatch(item)
    if match is None:
        raise _FieldError(f"{spec.name} item {item!r} is not valid cron syntax")
    start_text, end_text, step_text = match.group("start", "end", "step")

    if start_text == "*":
        if end_text is not None:
            raise _FieldError(f"{spec.name} item {item!r} is not valid cron syntax")
        # ``*`` in day-of-week means every day once: 0-6 (7 is only an alias of 0).
        start, end = spec.low, (6 if spec is _DAY_OF_WEEK else spec.high)
    else:
        start = _parse_value(start_text, spec)
        if end_text is not None:
            end = _parse_value(end_text, spec)
            if spec is _DAY_OF_WEEK and end == 0 and end_text.upper() == "SUN":
                end = 7  # so that ``FRI-SUN`` reads as Friday to Sunday
            if end < start:
                raise _FieldError(f"{spec.name} range {start_text}-{end_text} is reversed")
        elif step_text is not None:
            end = spec.high  # ``a/n``: from a to the field's maximum
        else:
            end = start

    step = 1
    if step_text is not None:
        step = int(step_text)
        if step == 0:
            raise _FieldError(f"{spec.name} step must be a positive number, got {step_text}")
    return set(range(start, end + 1, step))


def _parse_field(text: str, spec: _FieldSpec) -> tuple[int, ...]:
    """Parse a whole field (a comma list of items) into a sorted tuple of values."""
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _FieldError(f"{spec.name} field {text!r} has an empty list item")
        values |= _parse_item(item, spec)
    if spec is _DAY_OF_WEEK and 7 in values:
        values.discard(7)
        values.add(0)  # 7 is another name for Sunday
    return tuple(sorted(values))


def _load_zone(expression: str, timezone: str) -> ZoneInfo:
    """Load the IANA zone or raise a ConfigurationError naming it."""
    if not isinstance(timezone, str) or not timezone:
        raise ConfigurationError(
            f"invalid timezone {timezone!r} for cron expression {expression!r}: "
            "expected a non-empty IANA timezone name such as 'Europe/London'"
        )
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ConfigurationError(
            f"unknown timezone {timezone!r} for cron expression {expression!r}: "
            "not a valid IANA timezone name"
        ) from exc


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression bound to an IANA timezone.

    Fields are ``minute hour day-of-month month day-of-week``, or with six fields
    ``second minute hour day-of-month month day-of-week``. Each field accepts ``*``, a
    number, ``a-b``, ``*/n``, ``a-b/n``, ``a/n`` and comma lists of these; months and
    weekdays also accept names (``JAN``-``DEC``, ``SUN``-``SAT``), and weekday ``0`` and
    ``7`` both mean Sunday. As in Vixie cron, when both day-of-month and day-of-week are
    restricted (not literally ``*``) a day matches if either matches. The macros
    ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and
    ``@hourly`` are accepted too.

    Two schedules are equal when their (stripped) expression and timezone name are equal.

    Attributes:
        expression: The cron expression as given, with surrounding whitespace removed.
        timezone: The IANA timezone name, as given, in which fire times are wall-clock times.

    Example:
        >>> schedule = CronSchedule.parse("0 3 * * *", "America/New_York")
        >>> schedule
        CronSchedule(expression='0 3 * * *', timezone='America/New_York')
    """

    expression: str
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _seconds: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hours: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _days_of_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _months: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _days_of_week: frozenset[int] = field(init=False, repr=False, compare=False)
    _dom_restricted: bool = field(init=False, repr=False, compare=False)
    _dow_restricted: bool = field(init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSchedule:
        """Parse and validate a cron expression.

        Args:
            expression: Five fields (``minute hour dom month dow``), six fields with a
                leading ``second`` field, or a macro such as ``@daily``.
            timezone: IANA name of the timezone the expression's wall-clock times are in.

        Returns:
            The parsed schedule.

        Raises:
            ConfigurationError: The expression is malformed, has an out-of-range value, a
                zero step, a reversed range, can never fire (such as ``0 0 30 2 *``), or the
                timezone is unknown. The message names the expression and the problem.

        Example:
            >>> CronSchedule.parse("*/15 * * * *").expression
            '*/15 * * * *'
        """
        return cls(expression, timezone)

    def __post_init__(self) -> None:
        expression = self.expression
        if not isinstance(expression, str):
            raise ConfigurationError(
                f"invalid cron expression {expression!r}: expected a string, "
                f"got {type(expression).__name__}"
            )
        expression = expression.strip()
        object.__setattr__(self, "expression", expression)

        def fail(problem: str) -> ConfigurationError:
            return ConfigurationError(f"invalid cron expression {expression!r}: {problem}")

        if not expression:
            raise fail("the expression is empty")

        text = expression
        if text.startswith("@"):
            macro = _MACROS.get(text.lower())
            if macro is None:
                known = ", ".join(sorted(_MACROS))
                raise fail(f"unknown macro {text!r} (supported: {known})")
            text = macro

        parts = text.split()
        if len(parts) == 5:
            parts.insert(0, "0")
        elif len(parts) != 6:
            raise fail(
                f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 fields "
                f"(second minute hour day-of-month month day-of-week), got {len(parts)}"
            )

        specs = (_SECOND, _MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)
        try:
            seconds, minutes, hours, doms, months, dows = (
                _parse_field(part, spec) for part, spec in zip(parts, specs, strict=True)
            )
        except _FieldError as exc:
            raise fail(str(exc)) from None

        dom_restricted = parts[3] != "*"
        dow_restricted = parts[5] != "*"
        # Only a restricted day-of-month with an unrestricted day-of-week can miss every
        # date: every weekday occurs in every month, so any day-of-week term always fires.
        if (
            dom_restricted
            and not dow_restricted
            and not any(day <= _MAX_DAYS_IN_MONTH[month] for month in months for day in doms)
        ):
            raise fail(
                f"day-of-month {parts[3]!r} never occurs in month {parts[4]!r}, "
                "so the schedule can never fire"
            )

        zone = _load_zone(expression, self.timezone)

        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_seconds", seconds)
        object.__setattr__(self, "_minutes", minutes)
        object.__setattr__(self, "_hours", hours)
        object.__setattr__(self, "_days_of_month", doms)
        object.__setattr__(self, "_months", months)
        object.__setattr__(self, "_days_of_week", frozenset(dows))
        object.__setattr__(self, "_dom_restricted", dom_restricted)
        object.__setattr__(self, "_dow_restricted", dow_restricted)

    def next_after(self, moment: datetime) -> datetime:
        """Return the first fire time strictly after ``moment``.

        Fire times are wall-clock times in the schedule's timezone. A wall time that does
        not exist (skipped by a daylight-saving jump forward) never fires; an ambiguous one
        (repeated by a jump back) fires once, at its first occurrence.

        Args:
            moment: An aware datetime, in any timezone.

        Returns:
            The next fire time as an aware datetime in UTC (``datetime.UTC``).

        Raises:
            ValueError: ``moment`` is naive, or no fire time exists before the end of the
                range ``datetime`` can represent.

        Example:
            >>> from datetime import datetime, UTC
            >>> CronSchedule.parse("0 0 29 2 *").next_after(datetime(2024, 3, 1, tzinfo=UTC))
            datetime.datetime(2028, 2, 29, 0, 0, tzinfo=datetime.timezone.utc)
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"next_after() needs an aware datetime, got naive {moment!r}")
        zone = self._zone
        try:
            moment_utc = moment.astimezone(UTC)
            local = moment_utc.astimezone(zone)
            first_day = local.date()
            first_time = (local.hour, local.minute, local.second)
            # Mapping wall times (fold=0) to instants is monotonic, so no candidate with a
            # wall time before ``local`` can come after ``moment``; scan forward from it.
            for day in self._days_from(first_day):
                start = first_time if day == first_day else (0, 0, 0)
                for hour, minute, second in self._times_from(*start):
                    wall = datetime(day.year, day.month, day.day, hour, minute, second)
                    instant = wall.replace(tzinfo=zone).astimezone(UTC)
                    if instant <= moment_utc:
                        continue
                    if instant.astimezone(zone).replace(tzinfo=None) != wall:
                        continue  # in a spring-forward gap: this wall time does not exist
                    return instant
        except OverflowError:
            pass
        raise ValueError(
            f"cron expression {self.expression!r} has no fire time after {moment.isoformat()} "
            "that a datetime can represent"
        )

    def previous_before(self, moment: datetime) -> datetime | None:
        """Return the last fire time strictly before ``moment``, or ``None`` if there is none.

        The mirror of :meth:`next_after`, with the same daylight-saving rules: a skipped wall
        time never fired, a repeated one fired at its first occurrence.

        Args:
            moment: An aware datetime, in any timezone.

        Returns:
            The previous fire time as an aware datetime in UTC, or ``None`` when the
            expression never fired since the start of the range ``datetime`` can represent.

        Raises:
            ValueError: ``moment`` is naive.

        Example:
            >>> from datetime import datetime, UTC
            >>> CronSchedule.parse("0 3 * * *").previous_before(datetime(2024, 7, 5, 3, tzinfo=UTC))
            datetime.datetime(2024, 7, 4, 3, 0, tzinfo=datetime.timezone.utc)
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"previous_before() needs an aware datetime, got naive {moment!r}")
        zone = self._zone
        moment_utc = moment.astimezone(UTC)
        try:
            # After a jump back, wall times later than ``moment``'s own wall time may still
            # lie before it (their first occurrence came first): start a little ahead.
            local = (moment_utc + _MAX_ZONE_SHIFT).astimezone(zone)
        except OverflowError:
            local = datetime.max.replace(tzinfo=zone)
        first_day = local.date()
        first_time = (local.hour, local.minute, local.second)
        try:
            for day in self._days_until(first_day):
                end = first_time if day == first_day else (23, 59, 59)
                for hour, minute, second in self._times_until(*end):
                    wall = datetime(day.year, day.month, day.day, hour, minute, second)
                    instant = wall.replace(tzinfo=zone).astimezone(UTC)
                    if instant >= moment_utc:
                        continue
                    if instant.astimezone(zone).replace(tzinfo=None) != wall:
                        continue  # in a spring-forward gap: this wall time does not exist
                    return instant
        except OverflowError:
            pass
        return None

    def ticks_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The fire times after ``start`` and at or before ``end``: the latest ``limit`` of
        them, oldest first.

        Only the kept ticks are computed (walking back from ``end``), so a long gap in a
        frequent schedule costs ``limit`` steps, not one per tick.

        Args:
            start: An aware datetime; a tick exactly at ``start`` is not included.
            end: An aware datetime; a tick exactly at ``end`` is included.
            limit: How many ticks to keep at most, from the most recent back.

        Raises:
            ValueError: ``start`` or ``end`` is naive, or ``limit`` is negative.

        Example:
            >>> from datetime import datetime, UTC
            >>> schedule = CronSchedule.parse("0 * * * *")
            >>> [t.hour for t in schedule.ticks_between(
            ...     datetime(2024, 1, 1, 0, tzinfo=UTC), datetime(2024, 1, 1, 5, tzinfo=UTC), 3)]
            [3, 4, 5]
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"ticks_between() needs an aware start, got naive {start!r}")
        if limit < 0:
            raise ValueError(f"ticks_between() needs a limit >= 0, got {limit}")
        ticks: list[datetime] = []
        try:
            bound: datetime | None = end + timedelta(microseconds=1)
        except OverflowError:
            bound = end
        while bound is not None and len(ticks) < limit:
            tick = self.previous_before(bound)
            if tick is None or tick <= start:
                break
            ticks.append(tick)
            bound = tick
        ticks.reverse()
        return ticks

    def _days_from(self, start: date) -> Iterator[date]:
        """Yield the matching days on or after ``start``, in order."""
        for year in range(start.year, 10000):
            for month in self._months:
                if year == start.year and month < start.month:
                    continue
                first = start.day if (year, month) == (start.year, start.month) else 1
                for day in self._days_in_month(year, month):
                    if day >= first:
                        yield date(year, month, day)

    def _days_until(self, end: date) -> Iterator[date]:
        """Yield the matching days on or before ``end``, latest first."""
        for year in range(end.year, 0, -1):
            for month in reversed(self._months):
                if year == end.year and month > end.month:
                    continue
                last = end.day if (year, month) == (end.year, end.month) else 31
                for day in reversed(self._days_in_month(year, month)):
                    if day <= last:
                        yield date(year, month, day)

    def _days_in_month(self, year: int, month: int) -> list[int]:
        """Return the sorted days of ``month`` that match the day fields."""
        weekday_of_first, length = calendar.monthrange(year, month)
        by_dom = [day for day in self._days_of_month if day <= length]
        if self._dom_restricted and not self._dow_restricted:
            return by_dom
        # Day of the week of day 1 in cron numbering (Sunday=0; calendar has Monday=0).
        offset = weekday_of_first + 1
        weekdays = self._days_of_week
        by_dow = [day for day in range(1, length + 1) if (offset + day - 1) % 7 in weekdays]
        if self._dom_restricted:  # both restricted: Vixie cron's either-matches rule
            return sorted(set(by_dom).union(by_dow))
        # Day-of-month is ``*``: every day matches it, so day-of-week decides alone.
        return by_dow

    def _times_from(self, hour: int, minute: int, second: int) -> Iterator[tuple[int, int, int]]:
        """Yield the matching times of day at or after ``hour:minute:second``, in order."""
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        for h in hours[bisect_left(hours, hour) :]:
            minute_floor = minute if h == hour else 0
            for m in minutes[bisect_left(minutes, minute_floor) :]:
                second_floor = second if (h, m) == (hour, minute) else 0
                for s in seconds[bisect_left(seconds, second_floor) :]:
                    yield h, m, s

    def _times_until(self, hour: int, minute: int, second: int) -> Iterator[tuple[int, int, int]]:
        """Yield the matching times of day at or before ``hour:minute:second``, latest first."""
        hours, minutes, seconds = self._hours, self._minutes, self._seconds
        for h in reversed(hours[: bisect_right(hours, hour)]):
            minute_ceiling = minute if h == hour else 59
            for m in reversed(minutes[: bisect_right(minutes, minute_ceiling)]):
                second_ceiling = second if (h, m) == (hour, minute) else 59
                for s in reversed(seconds[: bisect_right(seconds, second_ceiling)]):
                    yield h, m, s


@dataclass(frozen=True)
class CronCatchUp:
    """What a cron schedule does, when a node starts, about the ticks it missed.

    ``"skip"`` (the default) enqueues nothing for them: the schedule goes on from the next
    tick. ``"latest"`` enqueues one job, for the latest tick missed. ``"all"`` enqueues one
    job per missed tick, oldest first, but at most ``limit`` of them: when more were missed,
    the most recent ``limit`` are kept and the older ones dropped.

    Missed ticks are those after the last tick whose job was enqueued; a schedule with no
    such job on record (a new schedule, or one whose jobs were all pruned) has missed nothing.

    Attributes:
        policy: ``"skip"``, ``"latest"`` or ``"all"``.
        limit: The most ticks ``"all"`` enqueues at one start (at least 1; default
            :data:`DEFAULT_CATCH_UP_LIMIT`, 100).

    Example:
        >>> CronCatchUp("all", limit=10)
        CronCatchUp(policy='all', limit=10)
    """

    policy: CatchUpPolicy = "skip"
    limit: int = DEFAULT_CATCH_UP_LIMIT

    def __post_init__(self) -> None:
        allowed = get_args(CatchUpPolicy)
        if self.policy not in allowed:
            raise ConfigurationError(
                f"unknown catch_up policy {self.policy!r}: use one of "
                + ", ".join(repr(name) for name in allowed)
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigurationError(
                f"catch_up_limit must be a whole number of at least 1, got {self.limit!r}"
            )

    def missed_ticks(
        self, schedule: CronSchedule, last: datetime | None, now: datetime
    ) -> list[datetime]:
        """The ticks to enqueue at start, oldest first: those of ``schedule`` after ``last``
        (the last tick enqueued, ``None`` if none is known) and at or before ``now``, as the
        policy keeps them.

        Example:
            >>> from datetime import datetime, UTC
            >>> hourly = CronSchedule.parse("0 * * * *")
            >>> last = datetime(2024, 1, 1, 0, tzinfo=UTC)
            >>> now = datetime(2024, 1, 1, 3, 30, tzinfo=UTC)
            >>> [t.hour for t in CronCatchUp("latest").missed_ticks(hourly, last, now)]
            [3]
        """
        if self.policy == "skip" or last is None:
            return []
        keep = 1 if self.policy == "latest" else self.limit
        return schedule.ticks_between(last, now, keep)


@dataclass(frozen=True)
class CronRegistration:
    """One schedule registered on a node with ``Rexecutor.with_cron_executor``.

    Attributes:
        executor: The name of the executor whose job is enqueued at each tick.
        schedule: The parsed expression and its timezone.
        data: The data of every tick's job, as given.
        metadata: The metadata of every tick's job, as given.
        catch_up: What the schedule does at node start about the ticks it missed.
    """

    executor: str
    schedule: CronSchedule
    data: Any = None
    metadata: Any = None
    catch_up: CronCatchUp = field(default_factory=CronCatchUp)
