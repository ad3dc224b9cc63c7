"""Business calendars: validation to the field, closed days, and wall-clock spans across DST."""

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from shared.core.calendars import BusinessCalendar

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = ["09:00-18:00"]


def calendar_json(**changes: Any) -> dict[str, Any]:
    hours = {day: OFFICE for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [], "sun": []}
    base: dict[str, Any] = {
        "timezone": "Europe/Berlin",
        "hours": hours,
        "holidays": {"country": "DE", "subdivision": "BY", "dates": ["2026-12-24"]},
    }
    return base | changes


def every_day(spans: list[str]) -> dict[str, list[str]]:
    return {day: spans for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def business_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> int:
    return sum((b - a) // timedelta(seconds=1) for a, b in calendar.working_intervals(start, end))


def error_locs(data: dict[str, Any]) -> list[tuple[int | str, ...]]:
    with pytest.raises(ValidationError) as caught:
        BusinessCalendar.model_validate(data)
    return [error["loc"] for error in caught.value.errors()]


def test_the_design_example_parses_and_serialises_back_unchanged() -> None:
    data = calendar_json()
    assert BusinessCalendar.model_validate(data).model_dump(mode="json") == data


@pytest.mark.parametrize(
    ("mon", "loc"),
    [
        (["9:00-18:00"], ("hours", "mon", 0)),
        (["09:00-18:00", "18:00-09:00"], ("hours", "mon", 1)),
        (["09:00-09:00"], ("hours", "mon", 0)),
        (["24:00-24:00"], ("hours", "mon", 0)),
        (["09:00-24:01"], ("hours", "mon", 0)),
        (["09:00-12:00", "11:59-17:00"], ("hours", "mon")),
        (["13:00-17:00", "08:00-13:30"], ("hours", "mon")),
    ],
)
def test_a_bad_span_is_named(mon: list[str], loc: tuple[int | str, ...]) -> None:
    hours = calendar_json()["hours"] | {"mon": mon}
    assert error_locs(calendar_json(hours=hours)) == [loc]


def test_touching_spans_and_an_end_at_midnight_are_allowed() -> None:
    hours = calendar_json()["hours"] | {"sat": ["18:00-24:00", "08:00-12:00", "12:00-13:00"]}
    calendar = BusinessCalendar.model_validate(calendar_json(hours=hours))
    assert calendar.hours.of(5) == ((8 * 3600, 13 * 3600), (18 * 3600, 24 * 3600))


def test_every_weekday_is_listed_and_none_other() -> None:
    hours = calendar_json()["hours"]
    missing = {day: spans for day, spans in hours.items() if day != "wed"}
    assert error_locs(calendar_json(hours=missing)) == [("hours", "wed")]
    assert error_locs(calendar_json(hours=hours | {"monday": OFFICE})) == [("hours", "monday")]


def test_a_calendar_without_any_working_hours_is_refused() -> None:
    assert error_locs(calendar_json(hours=every_day([]))) == [("hours",)]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"timezone": "Europe/Munich"}, ("timezone",)),
        ({"holidays": {"country": "XX"}}, ("holidays", "country")),
        ({"holidays": {"country": "DE", "subdivision": "CA"}}, ("holidays", "subdivision")),
        ({"holidays": {"subdivision": "BY"}}, ("holidays", "subdivision")),
        ({"holidays": {"dates": ["2026-02-30"]}}, ("holidays", "dates", 0)),
        ({"holidays": {"dates": ["2026-12-24", "24.12.2026"]}}, ("holidays", "dates", 1)),
        ({"holidays": {"dates": ["2026-12-24T00:00:00"]}}, ("holidays", "dates", 0)),
        ({"holidays": {"country": "DE", "regions": ["BY"]}}, ("holidays", "regions")),
        ({"week_starts": "mon"}, ("week_starts",)),
    ],
)
def test_each_bad_field_is_named(changes: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    assert error_locs(calendar_json(**changes)) == [loc]


def test_closed_days_come_from_the_holidays_data_and_the_extra_dates() -> None:
    bavaria = BusinessCalendar.model_validate(calendar_json())
    berlin = BusinessCalendar.model_validate(
        calendar_json(holidays={"country": "DE", "subdivision": "BE"})
    )
    assert bavaria.is_closed(date(2026, 1, 6))  # Epiphany: Bavaria, not Berlin
    assert not berlin.is_closed(date(2026, 1, 6))
    assert bavaria.is_closed(date(2026, 6, 4))  # Corpus Christi 2026
    assert bavaria.is_closed(date(2026, 12, 24))  # the extra date
    assert not berlin.is_closed(date(2026, 12, 24))
    assert not bavaria.is_closed(date(2026, 1, 7))


def test_a_holiday_closes_the_day_in_the_calendars_time_zone() -> None:
    calendar = BusinessCalendar.model_validate(
        calendar_json(timezone="America/New_York", hours=every_day(["00:00-24:00"]))
    )
    # A holiday is a local date of the calendar: all of 6 January in New York is closed,
    # then 7 January 00:00-06:00 counts: 6 h.
    epiphany = datetime(2026, 1, 6, 5, 0, tzinfo=UTC)  # 00:00 New York
    assert business_seconds(calendar, epiphany, epiphany + timedelta(hours=30)) == 6 * 3600


def test_the_spring_night_has_23_hours_and_the_autumn_night_25() -> None:
    calendar = BusinessCalendar.model_validate(calendar_json(hours=every_day(["00:00-24:00"])))
    spring, autumn = local("2026-03-29 00:00"), local("2026-10-25 00:00")
    assert business_seconds(calendar, spring, local("2026-03-30 00:00")) == 23 * 3600
    assert business_seconds(calendar, autumn, local("2026-10-26 00:00")) == 25 * 3600


def test_a_night_shift_counts_the_hours_the_wall_clock_shows() -> None:
    calendar = BusinessCalendar.model_validate(calendar_json(hours=every_day(["01:00-04:00"])))
    # 29 March: 01:00-02:00 CET, then the clock jumps to 03:00 CEST, 03:00-04:00: 2 h.
    assert business_seconds(calendar, local("2026-03-29 00:00"), local("2026-03-30 00:00")) == (
        2 * 3600
    )
    # 25 October: 01:00-03:00 CEST, back to 02:00 CET, 02:00-04:00 CET: 4 h in one piece.
    autumn = list(calendar.working_intervals(local("2026-10-25 00:00"), local("2026-10-26 00:00")))
    assert autumn == [
        (datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC))
    ]


def test_a_span_inside_the_skipped_or_repeated_hour() -> None:
    skipped = BusinessCalendar.model_validate(calendar_json(hours=every_day(["02:30-03:10"])))
    # 02:30 never shows on 29 March; the clock reads 03:00-03:10 CEST: 10 minutes.
    assert list(
        skipped.working_intervals(local("2026-03-29 00:00"), local("2026-03-30 00:00"))
    ) == [(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 10, tzinfo=UTC))]
    repeated = BusinessCalendar.model_validate(calendar_json(hours=every_day(["02:00-02:30"])))
    # 02:00-02:30 shows twice on 25 October: at 00:00Z (CEST) and again at 01:00Z (CET).
    assert list(
        repeated.working_intervals(local("2026-10-25 00:00"), local("2026-10-26 00:00"))
    ) == [
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
    ]


def test_a_year_of_office_hours() -> None:
    calendar = BusinessCalendar.model_validate(calendar_json())
    # 2026 has 261 weekdays; 9 of Bavaria's 12 public holidays fall on one (Jan 1, Jan 6,
    # Apr 3, Apr 6, May 1, May 14, May 25, Jun 4, Dec 25; Oct 3 is a Saturday, Nov 1 a
    # Sunday, Dec 26 a Saturday), and the extra Dec 24 is a Thursday: 261 - 9 - 1 = 251 days.
    seconds = business_seconds(calendar, local("2026-01-01 00:00"), local("2027-01-01 00:00"))
    assert seconds == 251 * 9 * 3600
