"""Business calendars: when a ticket's clock may run (see docs/tickets.md).

A calendar names a time zone, working hours per weekday as local wall-clock spans, and the
days it is closed: public holidays from the pinned `holidays` package plus extra dates. An
instant is business time exactly when the calendar's wall clock, at that instant, reads a
time inside a working span of a working day. Every rule fails as a pydantic
`ValidationError` whose `loc` names the field, so an API can answer 422 pointing at it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any

import holidays as holiday_data
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.core.periods import check_timezone, zone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SPAN_PATTERN = r"^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):([0-5]\d)|24:00)$"
_ONE_SECOND = timedelta(seconds=1)
_STEADY = timedelta(days=2)  # no zone changes its offset twice within two days and back

Interval = tuple[datetime, datetime]
"""A half-open [start, end) of aware UTC instants."""


def _seconds(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def span_seconds(span: str) -> tuple[int, int]:
    """A span "HH:MM-HH:MM" as seconds since local midnight, [start, end)."""
    start, end = span.split("-")
    return _seconds(start), _seconds(end)


def _check_span(span: str) -> str:
    if not re.match(SPAN_PATTERN, span):
        raise ValueError(f"{span!r} is not a span 'HH:MM-HH:MM' (end may be '24:00')")
    start, end = span_seconds(span)
    if start >= end:
        raise ValueError(f"{span!r} ends before it starts")
    return span


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
        raise ValueError(f"{value!r} is not an ISO date YYYY-MM-DD")
    return value


Span = Annotated[str, AfterValidator(_check_span)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
DaySpans = tuple[Span, ...]


class Hours(BaseModel):
    """Working spans per weekday; every day is listed, a closed day as []."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mon: DaySpans
    tue: DaySpans
    wed: DaySpans
    thu: DaySpans
    fri: DaySpans
    sat: DaySpans
    sun: DaySpans

    @field_validator(*WEEKDAYS)
    @classmethod
    def _spans_do_not_overlap(cls, spans: DaySpans) -> DaySpans:
        for earlier, later in pairwise(sorted(spans, key=span_seconds)):
            if span_seconds(later)[0] < span_seconds(earlier)[1]:
                raise ValueError(f"spans {earlier!r} and {later!r} overlap")
        return spans

    @model_validator(mode="after")
    def _some_day_has_hours(self) -> Hours:
        if not any(self.of(day) for day in range(7)):
            raise ValueError("no weekday has working hours: the clock could never run")
        return self

    def of(self, weekday: int) -> tuple[tuple[int, int], ...]:
        """The working spans of `weekday` (0 = Monday) in seconds, sorted, touching ones merged."""
        return _merged(getattr(self, WEEKDAYS[weekday]))


@lru_cache(maxsize=64)
def _merged(spans: DaySpans) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(map(span_seconds, spans)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


@lru_cache(maxsize=1)
def _countries() -> dict[str, list[str]]:
    return holiday_data.list_supported_countries(include_aliases=False)


@lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """The public holidays of `country` (and `subdivision`) in `year`, per the pinned package."""
    return frozenset(holiday_data.country_holidays(country, subdiv=subdivision, years=year))


class Holidays(BaseModel):
    """Days the calendar is closed: a country's (and subdivision's) public holidays, and more."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    country: str | None = None
    subdivision: str | None = None
    dates: tuple[IsoDate, ...] = ()

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        if country is not None and country not in _countries():
            raise ValueError(f"{country!r} is not an ISO 3166 country code the holidays data has")
        return country

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        if subdivision is None:
            return None
        country = info.data.get("country")
        if country is None:
            raise ValueError("a subdivision needs a country")
        known = _countries()[country]
        if subdivision not in known:
            raise ValueError(f"{subdivision!r} is not a subdivision of {country}: one of {known}")
        return subdivision


class BusinessCalendar(BaseModel):
    """A time zone, working hours per weekday, and closed days (terms' `calendar`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    timezone: Annotated[str, AfterValidator(check_timezone)]
    hours: Hours
    holidays: Holidays = Holidays()

    def is_closed(self, day: date) -> bool:
        """Whether the local date `day` is a public holiday or an extra closed date."""
        if day in self.holidays.dates:
            return True
        country = self.holidays.country
        return country is not None and day in public_holidays(
            country, self.holidays.subdivision, day.year
        )

    def working_intervals(self, start: datetime, end: datetime) -> Iterator[Interval]:
        """The business time within [start, end), as ordered, disjoint UTC intervals.

        An instant counts when the local wall clock reads a working time of a working day:
        an hour skipped by DST never counts, an hour repeated by DST counts twice if it
        is working time, and a span across a transition counts its real elapsed seconds.
        """
        pending: Interval | None = None
        for piece in self._pieces(start.astimezone(UTC), end.astimezone(UTC)):
            if pending is not None and piece[0] == pending[1]:
                pending = (pending[0], piece[1])
                continue
            if pending is not None:
                yield pending
            pending = piece
        if pending is not None:
            yield pending

    def _pieces(self, start: datetime, end: datetime) -> Iterator[Interval]:
        for low, high, offset in _steady_offsets(zone(self.timezone), start, end):
            local_low = (low + offset).replace(tzinfo=None)
            local_high = (high + offset).replace(tzinfo=None)
            day = local_low.date()
            while (midnight := datetime.combine(day, time())) < local_high:
                if not self.is_closed(day):
                    for span_start, span_end in self.hours.of(day.weekday()):
                        begin = max(midnight + timedelta(seconds=span_start), local_low)
                        finish = min(midnight + timedelta(seconds=span_end), local_high)
                        if begin < finish:
                            yield (
                                (begin - offset).replace(tzinfo=UTC),
                                (finish - offset).replace(tzinfo=UTC),
                            )
                day += timedelta(days=1)


def _offset(tz: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # an IANA zone always has one
    return offset


def _steady_offsets(
    tz: tzinfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime, timedelta]]:
    """Split [start, end) (whole seconds, UTC) into pieces over which `tz`'s offset is constant."""
    if start >= end:
        return
    first, last = _offset(tz, start), _offset(tz, end - _ONE_SECOND)
    if (first == last and end - start <= _STEADY) or end - start <= _ONE_SECOND:
        yield start, end, first
        return
    middle = start + (end - start) // 2
    middle -= timedelta(microseconds=middle.microsecond)
    if middle <= start:
        middle = start + _ONE_SECOND
    lower = list(_steady_offsets(tz, start, middle))
    upper = list(_steady_offsets(tz, middle, end))
    if lower[-1][2] == upper[0][2]:
        lower[-1] = (lower[-1][0], upper[0][1], lower[-1][2])
        upper = upper[1:]
    yield from lower
    yield from upper
