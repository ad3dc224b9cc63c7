"""Calendar arithmetic on `YYYY-MM` periods, and when a period closes by itself."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from shared.terms import period_bounds, period_of


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
