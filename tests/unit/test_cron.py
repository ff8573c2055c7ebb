"""Unit tests for rexecutor.cron: parsing, validation, next_after and DST behaviour."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rexecutor.cron import DEFAULT_CATCH_UP_LIMIT, CatchUpPolicy, CronCatchUp, CronSchedule
from rexecutor.errors import ConfigurationError, RexecutorError

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def fires(expression: str, start: datetime, count: int, timezone: str = "UTC") -> list[datetime]:
    """The ``count`` successive fire times after ``start``."""
    schedule = CronSchedule.parse(expression, timezone)
    result: list[datetime] = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        result.append(moment)
    return result


def minutes_of(times: list[datetime]) -> list[int]:
    return [t.minute for t in times]


# --------------------------------------------------------------------------- API basics


def test_parse_keeps_stripped_expression_and_timezone() -> None:
    schedule = CronSchedule.parse("  0 3 * * *\t", "Europe/London")
    assert schedule.expression == "0 3 * * *"
    assert schedule.timezone == "Europe/London"


def test_default_timezone_is_utc() -> None:
    assert CronSchedule.parse("0 3 * * *").timezone == "UTC"


def test_repr_shows_expression_and_timezone_only() -> None:
    schedule = CronSchedule.parse("0 3 * * *", "America/New_York")
    assert repr(schedule) == "CronSchedule(expression='0 3 * * *', timezone='America/New_York')"


def test_equality_and_hash() -> None:
    a = CronSchedule.parse("0 3 * * *", "UTC")
    b = CronSchedule.parse(" 0 3 * * * ", "UTC")
    c = CronSchedule.parse("0 3 * * *", "Europe/London")
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_schedule_is_frozen() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.expression = "1 3 * * *"  # type: ignore[misc]


def test_constructor_validates_like_parse() -> None:
    assert CronSchedule("0 3 * * *") == CronSchedule.parse("0 3 * * *")
    with pytest.raises(ConfigurationError):
        CronSchedule("61 * * * *")


def test_result_is_aware_utc() -> None:
    result = CronSchedule.parse("0 3 * * *", "Europe/London").next_after(utc(2024, 1, 1))
    assert result.tzinfo is UTC
    assert result == utc(2024, 1, 1, 3)


def test_naive_moment_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronSchedule.parse("* * * * *").next_after(datetime(2024, 1, 1))


def test_moment_in_any_timezone() -> None:
    schedule = CronSchedule.parse("0 12 * * *")
    # 2024-01-01 20:30 in Tokyo is 11:30 UTC.
    tokyo = datetime(2024, 1, 1, 20, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert schedule.next_after(tokyo) == utc(2024, 1, 1, 12)


# --------------------------------------------------------------------------- syntax forms


def test_star() -> None:
    assert fires("* * * * *", utc(2024, 1, 1, 10, 0), 3) == [
        utc(2024, 1, 1, 10, 1),
        utc(2024, 1, 1, 10, 2),
        utc(2024, 1, 1, 10, 3),
    ]


def test_single_number() -> None:
    assert fires("7 * * * *", utc(2024, 1, 1, 10, 0), 2) == [
        utc(2024, 1, 1, 10, 7),
        utc(2024, 1, 1, 11, 7),
    ]


def test_range() -> None:
    assert minutes_of(fires("10-12 * * * *", utc(2024, 1, 1, 10, 0), 4)) == [10, 11, 12, 10]


def test_star_step() -> None:
    assert minutes_of(fires("*/15 * * * *", utc(2024, 1, 1, 10, 0), 5)) == [15, 30, 45, 0, 15]


def test_range_step() -> None:
    assert minutes_of(fires("10-20/5 * * * *", utc(2024, 1, 1, 10, 0), 4)) == [10, 15, 20, 10]


def test_start_step_runs_to_field_maximum() -> None:
    assert minutes_of(fires("50/5 * * * *", utc(2024, 1, 1, 10, 0), 3)) == [50, 55, 50]


def test_list_of_mixed_items() -> None:
    assert minutes_of(fires("5,10-12,40/10 * * * *", utc(2024, 1, 1, 10, 0), 7)) == [
        5,
        10,
        11,
        12,
        40,
        50,
        5,
    ]


def test_step_on_hours() -> None:
    assert [t.hour for t in fires("0 9-17/4 * * *", utc(2024, 1, 1), 4)] == [9, 13, 17, 9]


def test_step_larger_than_range_selects_start_only() -> None:
    assert minutes_of(fires("*/100 * * * *", utc(2024, 1, 1, 10, 0), 2)) == [0, 0]


def test_whitespace_between_fields_is_flexible() -> None:
    assert fires("  0\t3   *  * *", utc(2024, 1, 1), 1) == [utc(2024, 1, 1, 3)]


def test_month_names_case_insensitive() -> None:
    assert fires("0 0 1 JAN,jul *", utc(2024, 1, 2), 3) == [
        utc(2024, 7, 1),
        utc(2025, 1, 1),
        utc(2025, 7, 1),
    ]


def test_month_name_range_with_step() -> None:
    assert [t.month for t in fires("0 0 1 Feb-Dec/3 *", utc(2024, 1, 2), 4)] == [2, 5, 8, 11]


def test_weekday_names() -> None:
    # 2024-01-01 is a Monday.
    result = fires("0 0 * * mon-FRI", utc(2024, 1, 1), 5)
    assert [t.day for t in result] == [2, 3, 4, 5, 8]
    assert {t.strftime("%a") for t in result} <= {"Mon", "Tue", "Wed", "Thu", "Fri"}


def test_weekday_range_ending_on_sunday_name() -> None:
    # FRI-SUN means Friday, Saturday, Sunday.
    result = fires("0 0 * * FRI-SUN", utc(2024, 1, 1), 4)
    assert [t.strftime("%a %d") for t in result] == ["Fri 05", "Sat 06", "Sun 07", "Fri 12"]


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_sunday_spellings(sunday: str) -> None:
    # 2024-01-07 and 2024-01-14 are Sundays.
    assert fires(f"0 0 * * {sunday}", utc(2024, 1, 1), 2) == [utc(2024, 1, 7), utc(2024, 1, 14)]


def test_weekday_range_up_to_seven() -> None:
    result = fires("0 0 * * 5-7", utc(2024, 1, 1), 4)
    assert [t.strftime("%a") for t in result] == ["Fri", "Sat", "Sun", "Fri"]


def test_weekday_star_step() -> None:
    result = fires("0 0 * * */2", utc(2024, 1, 1), 5)
    assert [t.strftime("%a") for t in result] == ["Tue", "Thu", "Sat", "Sun", "Tue"]


# --------------------------------------------------------------------------- day rules


def test_dom_only_restricted() -> None:
    assert fires("0 0 13 * *", utc(2024, 1, 1), 2) == [utc(2024, 1, 13), utc(2024, 2, 13)]


def test_dow_only_restricted() -> None:
    # Only Mondays, not every day, although day-of-month is "*".
    assert fires("0 0 * * MON", utc(2024, 1, 1), 3) == [
        utc(2024, 1, 8),
        utc(2024, 1, 15),
        utc(2024, 1, 22),
    ]


def test_or_rule_when_both_day_fields_restricted() -> None:
    # The 13th of each month OR any Friday. 2024-10-04 is a Friday; the 13th is a Sunday.
    assert fires("0 0 13 * FRI", utc(2024, 10, 1), 4) == [
        utc(2024, 10, 4),
        utc(2024, 10, 11),
        utc(2024, 10, 13),
        utc(2024, 10, 18),
    ]


def test_or_rule_applies_to_stepped_day_of_month() -> None:
    # "*/10" is not literally "*", so it counts as restricted: days 1,11,21,31 or Mondays.
    result = fires("0 0 */10 * MON", utc(2024, 1, 1), 8)
    assert [t.day for t in result] == [8, 11, 15, 21, 22, 29, 31, 1]


def test_or_rule_lets_impossible_day_of_month_fire_on_weekdays() -> None:
    # Feb 30 never exists, but Mondays in February do.
    assert fires("0 0 30 2 MON", utc(2024, 1, 1), 2) == [utc(2024, 2, 5), utc(2024, 2, 12)]


def test_day_31_skips_short_months() -> None:
    assert fires("0 0 31 * *", utc(2024, 1, 31), 3) == [
        utc(2024, 3, 31),
        utc(2024, 5, 31),
        utc(2024, 7, 31),
    ]


# --------------------------------------------------------------------------- six fields


def test_six_fields_seconds_first() -> None:
    assert fires("*/20 * * * * *", utc(2024, 1, 1, 10, 0, 0), 4) == [
        utc(2024, 1, 1, 10, 0, 20),
        utc(2024, 1, 1, 10, 0, 40),
        utc(2024, 1, 1, 10, 1, 0),
        utc(2024, 1, 1, 10, 1, 20),
    ]


def test_six_fields_specific_second() -> None:
    assert fires("30 0 12 * * *", utc(2024, 1, 1), 2) == [
        utc(2024, 1, 1, 12, 0, 30),
        utc(2024, 1, 2, 12, 0, 30),
    ]


def test_five_fields_fire_on_second_zero() -> None:
    result = fires("* * * * *", utc(2024, 1, 1, 10, 0, 30), 2)
    assert result == [utc(2024, 1, 1, 10, 1), utc(2024, 1, 1, 10, 2)]


# --------------------------------------------------------------------------- macros


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_macros(macro: str, expansion: str) -> None:
    start = utc(2024, 5, 17, 13, 45)
    assert fires(macro, start, 3) == fires(expansion, start, 3)
    assert CronSchedule.parse(macro).expression == macro


# --------------------------------------------------------------------------- next_after


def test_strictly_after_a_fire_time() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    assert schedule.next_after(utc(2024, 1, 1, 3)) == utc(2024, 1, 2, 3)


def test_just_before_a_fire_time() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    assert schedule.next_after(utc(2024, 1, 1, 2, 59, 59, 999999)) == utc(2024, 1, 1, 3)


def test_microseconds_after_a_fire_time() -> None:
    schedule = CronSchedule.parse("* * * * * *")
    moment = utc(2024, 1, 1, 3, 0, 0, 1)
    assert schedule.next_after(moment) == utc(2024, 1, 1, 3, 0, 1)


def test_month_rollover() -> None:
    assert CronSchedule.parse("0 0 1 * *").next_after(utc(2024, 1, 31, 23, 59)) == utc(2024, 2, 1)


def test_year_rollover() -> None:
    schedule = CronSchedule.parse("59 23 31 12 *")
    assert schedule.next_after(utc(2024, 12, 31, 23, 59)) == utc(2025, 12, 31, 23, 59)
    assert CronSchedule.parse("0 0 1 1 *").next_after(utc(2024, 6, 1)) == utc(2025, 1, 1)


def test_rollover_through_hours_minutes_and_seconds() -> None:
    schedule = CronSchedule.parse("0 0 0 * * *")
    assert schedule.next_after(utc(2024, 12, 31, 23, 59, 59)) == utc(2025, 1, 1)


def test_feb_29_fires_only_in_leap_years() -> None:
    assert fires("0 0 29 2 *", utc(2024, 2, 29), 3) == [
        utc(2028, 2, 29),
        utc(2032, 2, 29),
        utc(2036, 2, 29),
    ]


def test_feb_29_skips_century_non_leap_year() -> None:
    assert CronSchedule.parse("0 0 29 2 *").next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)


def test_feb_29_many_successive_calls() -> None:
    schedule = CronSchedule.parse("0 0 29 2 *")
    moment = utc(2000, 1, 1)
    for _ in range(1000):
        following = schedule.next_after(moment)
        assert following > moment
        assert (following.month, following.day) == (2, 29)
        moment = following
    assert moment.year > 6000


def test_every_second_many_successive_calls() -> None:
    schedule = CronSchedule.parse("* * * * * *")
    moment = utc(2024, 12, 31, 23, 59)
    for _ in range(1000):
        following = schedule.next_after(moment)
        assert following == moment + timedelta(seconds=1)
        moment = following


def test_no_fire_time_before_datetime_max() -> None:
    schedule = CronSchedule.parse("0 0 29 2 *")
    with pytest.raises(ValueError, match="no fire time"):
        schedule.next_after(utc(9996, 3, 1))


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("*/7 3-5 * * *", lambda t: t.minute % 7 == 0 and 3 <= t.hour <= 5),
        ("15,45 */6 1-10 * *", lambda t: t.minute in (15, 45) and t.hour % 6 == 0 and t.day <= 10),
        ("0 12 * * 1,3", lambda t: (t.minute, t.hour) == (0, 12) and t.isoweekday() in (1, 3)),
        (
            "30 6 15 * SAT",
            lambda t: (t.minute, t.hour) == (30, 6) and (t.day == 15 or t.isoweekday() == 6),
        ),
        ("0 0 * 2,3 *", lambda t: (t.minute, t.hour) == (0, 0) and t.month in (2, 3)),
    ],
)
def test_agrees_with_brute_force_scan(expression: str, matches: Callable[[datetime], bool]) -> None:
    schedule = CronSchedule.parse(expression)
    start = utc(2024, 1, 25)
    expected = [
        t for t in (start + timedelta(minutes=i) for i in range(1, 60 * 24 * 50)) if matches(t)
    ]
    assert expected
    actual: list[datetime] = []
    moment = start
    while True:
        moment = schedule.next_after(moment)
        if moment > expected[-1]:
            break
        actual.append(moment)
    assert actual == expected


# --------------------------------------------------------------------------- DST


def test_london_spring_forward_gap_is_skipped() -> None:
    # 2024-03-31: clocks jump from 01:00 GMT to 02:00 BST; 01:30 does not exist that day.
    assert fires("30 1 * * *", utc(2024, 3, 30, 12), 2, "Europe/London") == [
        utc(2024, 4, 1, 0, 30),  # 01:30 BST
        utc(2024, 4, 2, 0, 30),
    ]


def test_london_spring_forward_half_hourly() -> None:
    result = fires("*/30 * * * *", utc(2024, 3, 31, 0, 0), 3, "Europe/London")
    # 00:30 GMT, then 01:00/01:30 wall times are missing, then 02:00 BST (01:00 UTC).
    assert result == [utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1, 0), utc(2024, 3, 31, 1, 30)]
    assert [t.astimezone(LONDON).strftime("%H:%M %Z") for t in result] == [
        "00:30 GMT",
        "02:00 BST",
        "02:30 BST",
    ]


def test_london_fall_back_ambiguous_time_fires_once() -> None:
    # 2024-10-27: clocks go back from 02:00 BST to 01:00 GMT; 01:30 happens twice.
    assert fires("30 1 * * *", utc(2024, 10, 26, 12), 2, "Europe/London") == [
        utc(2024, 10, 27, 0, 30),  # 01:30 BST, the first occurrence
        utc(2024, 10, 28, 1, 30),  # 01:30 GMT the next day
    ]


def test_london_fall_back_half_hourly_skips_repeated_hour() -> None:
    result = fires("*/30 * * * *", utc(2024, 10, 27, 0, 0), 3, "Europe/London")
    # 01:30 BST, then the repeated 01:00 and 01:30 GMT do not fire again, then 02:00 GMT.
    assert result == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 2, 0), utc(2024, 10, 27, 2, 30)]


def test_new_york_spring_forward_gap_is_skipped() -> None:
    # 2024-03-10: clocks jump from 02:00 EST to 03:00 EDT.
    assert fires("0 2 * * *", utc(2024, 3, 9, 12), 2, "America/New_York") == [
        utc(2024, 3, 11, 6),  # 02:00 EDT
        utc(2024, 3, 12, 6),
    ]


def test_new_york_every_second_across_gap() -> None:
    schedule = CronSchedule.parse("* * * * * *", "America/New_York")
    before_gap = utc(2024, 3, 10, 6, 59, 59)  # 01:59:59 EST
    result = schedule.next_after(before_gap)
    assert result == utc(2024, 3, 10, 7)
    assert result.astimezone(NEW_YORK).strftime("%H:%M:%S %Z") == "03:00:00 EDT"


def test_new_york_fall_back_ambiguous_time_fires_once() -> None:
    # 2024-11-03: clocks go back from 02:00 EDT to 01:00 EST.
    assert fires("30 1 * * *", utc(2024, 11, 2, 12), 2, "America/New_York") == [
        utc(2024, 11, 3, 5, 30),  # 01:30 EDT
        utc(2024, 11, 4, 6, 30),  # 01:30 EST the next day
    ]


def test_new_york_moment_in_second_occurrence() -> None:
    schedule = CronSchedule.parse("30 1 * * *", "America/New_York")
    # 01:15 EST (second pass through 01:xx): 01:30 has already fired at its first occurrence.
    moment = datetime(2024, 11, 3, 1, 15, fold=1, tzinfo=NEW_YORK)
    assert moment.astimezone(UTC) == utc(2024, 11, 3, 6, 15)
    assert schedule.next_after(moment) == utc(2024, 11, 4, 6, 30)


def test_new_york_moment_in_first_occurrence() -> None:
    schedule = CronSchedule.parse("45 1 * * *", "America/New_York")
    moment = datetime(2024, 11, 3, 1, 15, fold=0, tzinfo=NEW_YORK)  # 01:15 EDT
    assert schedule.next_after(moment) == utc(2024, 11, 3, 5, 45)  # 01:45 EDT


def test_new_york_hourly_over_fall_back() -> None:
    result = fires("0 * * * *", utc(2024, 11, 3, 4), 3, "America/New_York")  # from 00:00 EDT
    assert result == [
        utc(2024, 11, 3, 5),  # 01:00 EDT
        utc(2024, 11, 3, 7),  # 02:00 EST; 01:00 EST is the repeat and does not fire
        utc(2024, 11, 3, 8),
    ]


def test_wall_clock_time_is_kept_across_dst() -> None:
    winter, summer = fires("0 9 * * *", utc(2024, 3, 30, 12), 2, "Europe/London")
    assert winter == utc(2024, 3, 31, 8)  # 09:00 BST
    assert summer == utc(2024, 4, 1, 8)
    assert CronSchedule.parse("0 9 * * *", "Europe/London").next_after(utc(2024, 1, 1)) == utc(
        2024, 1, 1, 9
    )  # 09:00 GMT


# --------------------------------------------------------------------------- errors


def test_configuration_error_is_a_rexecutor_error() -> None:
    assert issubclass(ConfigurationError, RexecutorError)


def test_out_of_range_message_exact() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CronSchedule.parse("61 * * * *")
    assert str(excinfo.value) == (
        "invalid cron expression '61 * * * *': minute value 61 is out of range 0-59"
    )


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("60 * * * * *", "second value 60 is out of range 0-59"),
        ("* 60 * * * *", "minute value 60 is out of range 0-59"),
        ("* 24 * * *", "hour value 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month value 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month value 32 is out of range 1-31"),
        ("* * * 0 *", "month value 0 is out of range 1-12"),
        ("* * * 13 *", "month value 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week value 8 is out of range 0-7"),
        ("1-70 * * * *", "minute value 70 is out of range 0-59"),
        ("99999999999999999999 * * * *", "out of range 0-59"),
    ],
)
def test_out_of_range(expression: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CronSchedule.parse(expression)
    message = str(excinfo.value)
    assert message.startswith(f"invalid cron expression {expression!r}: ")
    assert fragment in message


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("* * * *", "expected 5 fields"),
        ("* * * *", "got 4"),
        ("* * * * * * *", "got 7"),
        ("*", "got 1"),
        ("*/0 * * * *", "minute step must be a positive number, got 0"),
        ("* 1-5/0 * * *", "hour step must be a positive number"),
        ("5-1 * * * *", "minute range 5-1 is reversed"),
        ("* * * DEC-JAN *", "month range DEC-JAN is reversed"),
        ("* * * * SAT-MON", "day-of-week range SAT-MON is reversed"),
        ("foo * * * *", "minute value 'foo' is not a number"),
        ("MON * * * *", "minute value 'MON' is not a number"),
        ("* * * FOO *", "month has no value named 'FOO'"),
        ("* * * * MONDAY", "day-of-week has no value named 'MONDAY'"),
        ("* * * * JAN", "day-of-week has no value named 'JAN'"),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item"),
        ("1, * * * *", "empty list item"),
        ("1- * * * *", "minute item '1-' is not valid cron syntax"),
        ("*/ * * * *", "minute item '*/' is not valid cron syntax"),
        ("*-5 * * * *", "minute item '*-5' is not valid cron syntax"),
        ("1-5-7 * * * *", "not valid cron syntax"),
        ("-1 * * * *", "not valid cron syntax"),
        ("1/2/3 * * * *", "not valid cron syntax"),
        ("*/-1 * * * *", "not valid cron syntax"),
        ("? * * * *", "not valid cron syntax"),
        ("\u0663 * * * *", "not valid cron syntax"),  # Arabic-Indic digit three
        ("", "the expression is empty"),
        ("   \t ", "the expression is empty"),
        ("@reboot", "unknown macro '@reboot'"),
        ("@daily 0", "unknown macro"),
        ("0 0 30 2 *", "day-of-month '30' never occurs in month '2'"),
        ("0 0 30,31 FEB *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("0 0 0 31 2 *", "can never fire"),
    ],
)
def test_invalid_expressions(expression: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CronSchedule.parse(expression)
    message = str(excinfo.value)
    assert message.startswith(f"invalid cron expression {expression.strip()!r}: ")
    assert fragment in message


def test_feb_29_alone_is_valid() -> None:
    CronSchedule.parse("0 0 29 2 *")
    CronSchedule.parse("0 0 29-31 2 *")
    CronSchedule.parse("0 0 31 2,3 *")


def test_non_string_expression() -> None:
    with pytest.raises(ConfigurationError, match="expected a string"):
        CronSchedule.parse(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe", "../etc/passwd", "/etc/passwd"])
def test_unknown_timezone(zone: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CronSchedule.parse("0 0 * * *", zone)
    message = str(excinfo.value)
    assert repr(zone) in message
    assert "timezone" in message


def test_empty_timezone() -> None:
    with pytest.raises(ConfigurationError, match="timezone ''"):
        CronSchedule.parse("0 0 * * *", "")


def test_expression_error_reported_before_timezone_error() -> None:
    with pytest.raises(ConfigurationError, match="minute value 61"):
        CronSchedule.parse("61 * * * *", "Mars/Olympus_Mons")


# --------------------------------------------------------------------------- looking back


def forward_ticks(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in (start, end], found with next_after alone."""
    ticks: list[datetime] = []
    moment = schedule.next_after(start)
    while moment <= end:
        ticks.append(moment)
        moment = schedule.next_after(moment)
    return ticks


@pytest.mark.parametrize(
    ("expression", "timezone", "start", "end"),
    [
        # Every 10 minutes across London's spring-forward gap and its fall-back repeat.
        ("*/10 * * * *", "Europe/London", utc(2024, 3, 30, 22), utc(2024, 4, 1)),
        ("*/10 * * * *", "Europe/London", utc(2024, 10, 26, 22), utc(2024, 10, 28)),
        # Wall times that fall in New York's gap (02:30) and in its repeated hour (01:30).
        ("30 1,2 * * *", "America/New_York", utc(2024, 3, 8), utc(2024, 3, 13)),
        ("30 1,2 * * *", "America/New_York", utc(2024, 11, 1), utc(2024, 11, 6)),
        # Lord Howe shifts by half an hour; every second across it.
        ("*/20 * * * * *", "Australia/Lord_Howe", utc(2024, 4, 6, 14, 45), utc(2024, 4, 6, 15, 45)),
        ("0 0 29 2 *", "UTC", utc(2019, 1, 1), utc(2033, 1, 1)),
        ("0 9 * * MON-FRI", "Asia/Kathmandu", utc(2024, 12, 20), utc(2025, 1, 10)),
    ],
)
def test_previous_before_mirrors_next_after(
    expression: str, timezone: str, start: datetime, end: datetime
) -> None:
    schedule = CronSchedule.parse(expression, timezone)
    ticks = forward_ticks(schedule, start, end)
    assert len(ticks) >= 2
    for earlier, later in itertools.pairwise(ticks):
        assert schedule.previous_before(later) == earlier
        assert schedule.previous_before(later - timedelta(microseconds=1)) == earlier
        assert schedule.previous_before(earlier + timedelta(microseconds=1)) == earlier
        middle = earlier + (later - earlier) / 2
        assert schedule.previous_before(middle) == earlier
    # ticks_between finds the same ticks walking back, and keeps the latest ones.
    assert schedule.ticks_between(start, end, len(ticks) + 5) == ticks
    assert schedule.ticks_between(start, end, 2) == ticks[-2:]
    assert schedule.ticks_between(ticks[0], ticks[-1], 1000) == ticks[1:]


def test_previous_before_in_the_repeated_hour_finds_the_first_occurrence() -> None:
    # 01:30 fires once, at its first occurrence (EDT, 05:30 UTC); asked from within the
    # second 01:xx hour (EST), the previous fire time is that first one, an hour back.
    schedule = CronSchedule.parse("30 1 * * *", "America/New_York")
    moment = datetime(2024, 11, 3, 1, 15, fold=1, tzinfo=NEW_YORK)  # 06:15 UTC
    assert schedule.previous_before(moment) == utc(2024, 11, 3, 5, 30)
    later = datetime(2024, 11, 3, 1, 45, fold=1, tzinfo=NEW_YORK)
    assert schedule.previous_before(later) == utc(2024, 11, 3, 5, 30)


def test_previous_before_skips_a_wall_time_in_the_gap() -> None:
    schedule = CronSchedule.parse("30 2 * * *", "America/New_York")
    # 2024-03-10 02:30 does not exist in New York: the previous one is the day before.
    assert schedule.previous_before(utc(2024, 3, 10, 12)) == utc(2024, 3, 9, 7, 30)


def test_previous_before_at_the_start_of_time_is_none() -> None:
    schedule = CronSchedule.parse("0 0 1 1 *")
    assert schedule.previous_before(utc(1, 1, 1)) is None
    assert schedule.previous_before(utc(1, 6, 1)) == utc(1, 1, 1)
    assert CronSchedule.parse("0 12 * * *", "Asia/Tokyo").previous_before(utc(1, 1, 1, 1)) is None


def test_previous_before_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="naive"):
        CronSchedule.parse("* * * * *").previous_before(datetime(2024, 1, 1))


def test_ticks_between_a_long_gap_costs_only_the_kept_ticks() -> None:
    every_second = CronSchedule.parse("* * * * * *")
    ticks = every_second.ticks_between(utc(2000, 1, 1), utc(2024, 1, 1), 3)
    assert ticks == [utc(2023, 12, 31, 23, 59, 58), utc(2023, 12, 31, 23, 59, 59), utc(2024, 1, 1)]


def test_ticks_between_edges() -> None:
    hourly = CronSchedule.parse("0 * * * *")
    assert hourly.ticks_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 1), 10) == []
    assert hourly.ticks_between(utc(2024, 1, 1, 1), utc(2024, 1, 1, 2), 0) == []
    assert hourly.ticks_between(utc(2024, 1, 1, 5), utc(2024, 1, 1, 1), 10) == []
    with pytest.raises(ValueError, match="limit"):
        hourly.ticks_between(utc(2024, 1, 1), utc(2024, 1, 2), -1)
    with pytest.raises(ValueError, match="naive"):
        hourly.ticks_between(datetime(2024, 1, 1), utc(2024, 1, 2), 1)


# --------------------------------------------------------------------------- catch-up policy


HOURLY = CronSchedule.parse("0 * * * *")
LAST = utc(2024, 1, 1, 0)
NOW = utc(2024, 1, 1, 5, 30)


def test_catch_up_defaults_to_skip_with_a_bound_of_100() -> None:
    assert CronCatchUp() == CronCatchUp("skip", DEFAULT_CATCH_UP_LIMIT)
    assert DEFAULT_CATCH_UP_LIMIT == 100


def test_skip_enqueues_nothing() -> None:
    assert CronCatchUp("skip").missed_ticks(HOURLY, LAST, NOW) == []


def test_latest_is_the_latest_missed_tick() -> None:
    assert CronCatchUp("latest").missed_ticks(HOURLY, LAST, NOW) == [utc(2024, 1, 1, 5)]


def test_all_is_every_missed_tick_oldest_first() -> None:
    hours = [t.hour for t in CronCatchUp("all").missed_ticks(HOURLY, LAST, NOW)]
    assert hours == [1, 2, 3, 4, 5]


def test_all_over_the_bound_keeps_the_most_recent() -> None:
    hours = [t.hour for t in CronCatchUp("all", limit=2).missed_ticks(HOURLY, LAST, NOW)]
    assert hours == [4, 5]


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_nothing_is_missed_without_a_last_tick_or_after_it(policy: CatchUpPolicy) -> None:
    catch_up = CronCatchUp(policy)
    assert catch_up.missed_ticks(HOURLY, None, NOW) == []
    assert catch_up.missed_ticks(HOURLY, utc(2024, 1, 1, 5), NOW) == []


def test_a_tick_exactly_now_is_missed() -> None:
    assert CronCatchUp("latest").missed_ticks(HOURLY, LAST, utc(2024, 1, 1, 5)) == [
        utc(2024, 1, 1, 5)
    ]


@pytest.mark.parametrize("policy", ["never", "", "ALL", None])
def test_unknown_policy_names_the_allowed_ones(policy: object) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        CronCatchUp(policy)  # type: ignore[arg-type]
    assert "'skip', 'latest', 'all'" in str(excinfo.value)
    assert repr(policy) in str(excinfo.value)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "10"])
def test_limit_under_one_is_refused(limit: object) -> None:
    with pytest.raises(
        ConfigurationError, match="catch_up_limit must be a whole number of at least 1"
    ):
        CronCatchUp("all", limit)  # type: ignore[arg-type]
