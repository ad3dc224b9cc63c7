"""Periods: the calendar month an instant falls in (in a contract's time zone), its bounds,
arithmetic on `YYYY-MM` periods, and when a period closes by itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> tzinfo:
    """The IANA time zone of that name ("Europe/Berlin"), else raise `ValueError`."""
    if name == "UTC":
        return UTC
    if name not in _known_zones():
        raise ValueError(f"{name!r} is not an IANA time zone name such as 'Europe/Berlin'")
    return ZoneInfo(name)


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone name, else raise `ValueError`."""
    zone(name)
    return name


def period_of(dt: datetime, tz: str) -> str:
    """The period "YYYY-MM" that the aware instant `dt` falls in, in time zone `tz`."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("period_of needs an aware datetime")
    try:
        local = dt.astimezone(zone(tz))
    except OverflowError:  # year 1 seen west of UTC, year 9999 east of it
        raise ValueError(f"{dt.isoformat()} has no calendar month in {tz}") from None
    return f"{local.year:04d}-{local.month:02d}"


def period_bounds(period: str, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the calendar month `period` in time zone `tz`.

    Local midnight of the 1st that falls in a DST gap maps to the instant the gap opens,
    and one that repeats maps to its first occurrence, so an instant `t` lies in
    [start, end) exactly when `period_of(t, tz) == period`.
    """
    if not re.match(PERIOD_PATTERN, period) or not 1 <= int(period[:4]) < 9999:
        raise ValueError(f"{period!r} is not a period YYYY-MM")
    year, month = int(period[:4]), int(period[5:])
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    local = zone(tz)
    try:
        start = datetime(year, month, 1, tzinfo=local).astimezone(UTC)
        end = datetime(*following, 1, tzinfo=local).astimezone(UTC)
    except OverflowError:  # 0001-01 east of UTC starts before the first UTC instant
        raise ValueError(f"{period} has no bounds in UTC in {tz}") from None
    return start, end


class PeriodFinder:
    """`period_of` for many instants in one time zone: the bounds of the period found last
    answer the next instant with two comparisons (a fold's events cluster in one month)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self._period = ""
        self._bounds: tuple[datetime, datetime] | None = None

    def __call__(self, dt: datetime) -> str:
        bounds = self._bounds
        if bounds is not None and bounds[0] <= dt < bounds[1]:
            return self._period
        self._period = period_of(dt, self.tz)
        self._bounds = period_bounds(self._period, self.tz)
        return self._period


def shift(period: str, months: int) -> str:
    year, month = map(int, period.split("-"))
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(earlier: str, later: str) -> int:
    (y1, m1), (y2, m2) = map(int, earlier.split("-")), map(int, later.split("-"))
    return (y2 - y1) * 12 + (m2 - m1)


def periods(first: str, last: str) -> Iterator[str]:
    period = first
    while period <= last:
        yield period
        period = shift(period, 1)


def first_open_after(period: str, closed: set[str] | frozenset[str]) -> str:
    """The first period after `period` that is not closed: where corrections are posted."""
    candidate = shift(period, 1)
    while candidate in closed:
        candidate = shift(candidate, 1)
    return candidate


def has_ended(period: str, timezone: str, now: datetime) -> bool:
    return period_bounds(period, timezone)[1] <= now


def close_deadline(period: str, timezone: str, agreed_at: datetime, grace_days: int) -> datetime:
    """`grace_days` after the later of the period's end and the time its terms were agreed."""
    end = period_bounds(period, timezone)[1]
    return max(end, agreed_at) + timedelta(days=grace_days)


def current_period(now: datetime, timezone: str) -> str:
    return period_of(now, timezone)
