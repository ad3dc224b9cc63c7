"""The clock agrees with a brute-force count, minute by minute, for any calendar and ticket.

Every boundary (event times, working spans, DST transitions) falls on a whole minute, so
counting the minutes that start in business time while the clock runs is exact.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.calendars import BusinessCalendar
from shared.core.clock import Metric, measure
from shared.core.tickets import TicketEventIn

MINUTE = timedelta(minutes=1)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# per zone, a day before each DST change (Lord Howe's is half an hour), twice as likely as
# a day before a holiday
ANCHORS = {
    "Europe/Berlin": ["2026-03-28", "2026-10-24"] * 2 + ["2026-01-05", "2026-04-02", "2026-12-23"],
    "America/New_York": ["2026-03-07", "2026-10-31"] * 2 + ["2026-11-25"],
    "Australia/Lord_Howe": ["2026-04-03T12:00", "2026-10-02T12:00"],
    "UTC": ["2026-02-26", "2026-12-30"],
}
HOLIDAYS: list[dict[str, Any]] = [
    {},
    {"country": "DE", "subdivision": "BY", "dates": ["2026-12-24", "2026-03-27"]},
    {"country": "US", "subdivision": "NY"},
    {"country": "AU", "subdivision": "NSW", "dates": ["2026-10-02"]},
    {"dates": ["2026-01-05", "2026-10-26", "2026-03-30"]},
]
NEXT = {
    "open": {"responded": "open", "paused": "paused", "resolved": "resolved"},
    "paused": {"responded": "paused", "resumed": "open", "resolved": "resolved"},
    "resolved": {"responded": "resolved", "reopened": "open"},
}


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    quarters = draw(st.lists(st.integers(0, 96), unique=True, max_size=4).map(sorted))
    if len(quarters) % 2:
        quarters = quarters[:-1]
    return [
        f"{clock(15 * a)}-{clock(15 * b)}"
        for a, b in zip(quarters[::2], quarters[1::2], strict=True)
    ]


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[str, datetime]]]:
    """A calendar, and a ticket that starts near one of its zone's DST changes or holidays."""
    patterns = st.sampled_from([["09:00-18:00"], ["00:00-24:00"], ["01:00-04:00"], []])
    hours = {day: draw(st.one_of(patterns, day_hours())) for day in DAYS}
    if not any(hours.values()):
        hours["mon"] = ["09:00-17:00"]
    zone = draw(st.sampled_from(sorted(ANCHORS)))
    cal = {"timezone": zone, "hours": hours, "holidays": draw(st.sampled_from(HOLIDAYS))}
    anchor = datetime.fromisoformat(draw(st.sampled_from(ANCHORS[zone]))).replace(tzinfo=UTC)
    at = anchor + MINUTE * draw(st.integers(0, 2 * 1440))
    events, state = [("opened", at)], "open"
    for _ in range(draw(st.integers(0, 6))):
        type_ = draw(st.sampled_from(sorted(NEXT[state])))
        at += MINUTE * draw(st.one_of(st.integers(1, 600), st.integers(1, 3 * 1440)))
        events.append((type_, at))
        state = NEXT[state][type_]
    return cal, events


@dataclass(frozen=True)
class Brute:
    seconds: int
    stopped_at: datetime | None


def brute_force(
    cal: dict[str, Any], events: list[tuple[str, datetime]], metric: Metric, until: datetime
) -> Brute:
    """Deliberately simple: walk the minutes, ask the wall clock and the last event."""
    tz = ZoneInfo(cal["timezone"])
    closed = {date.fromisoformat(text) for text in cal["holidays"].get("dates", [])}
    if "country" in cal["holidays"]:
        years = range(2025, 2028)
        data = holidays.country_holidays(
            cal["holidays"]["country"], subdiv=cal["holidays"].get("subdivision"), years=years
        )
        closed |= set(data)
    spans = {
        day: [(int(s[:2]) * 60 + int(s[3:5]), int(s[6:8]) * 60 + int(s[9:])) for s in texts]
        for day, texts in cal["hours"].items()
    }
    seen = [(type_, at) for type_, at in events if at < until]
    total, minute = 0, seen[0][1]
    while minute < until:
        so_far = [type_ for type_, at in seen if at <= minute]
        steps = [type_ for type_ in so_far if type_ != "responded"]
        running = steps[-1] in ("opened", "resumed", "reopened")
        if metric == "response" and ("responded" in so_far or "resolved" in so_far):
            running = False
        if running:
            wall = minute.astimezone(tz)
            now = wall.hour * 60 + wall.minute
            working = any(a <= now < b for a, b in spans[DAYS[wall.weekday()]])
            if working and wall.date() not in closed:
                total += 60
        minute += MINUTE
    if metric == "response":
        stops = [at for type_, at in seen if type_ in ("responded", "resolved")]
        stop = stops[0] if stops else None
    else:
        last = [(type_, at) for type_, at in seen if type_ != "responded"][-1]
        resolved = [at for type_, at in seen if type_ == "resolved"]
        stop = resolved[-1] if last[0] == "resolved" else None
    return Brute(total, stop)


@settings(max_examples=120, deadline=None)
@given(
    case=cases(),
    metric=st.sampled_from(["response", "resolution"]),
    cut=st.one_of(st.none(), st.integers(-1440, 3 * 1440)),
    order=st.randoms(use_true_random=False),
)
def test_the_clock_matches_a_minute_by_minute_count(
    case: tuple[dict[str, Any], list[tuple[str, datetime]]],
    metric: Metric,
    cut: int | None,
    order: Any,
) -> None:
    cal, events = case
    calendar = BusinessCalendar.model_validate(cal)
    posted = [
        TicketEventIn(contract_id="prop-test", ticket_id="T-1", type=type_, at=at)
        for type_, at in events
    ]
    order.shuffle(posted)
    last = events[-1][1]
    if cut is None:
        whole = brute_force(cal, events, metric, last + MINUTE)
        if whole.stopped_at is not None:
            got = measure(calendar, posted, metric)
            assert (got.seconds, got.stopped_at) == (whole.seconds, whole.stopped_at)
            assert sum((b - a) // timedelta(seconds=1) for a, b in got.spans) == got.seconds
            return
        cut = 1440
    until = max(events[0][1] + MINUTE, last + MINUTE * cut)
    expected = brute_force(cal, events, metric, until)
    got = measure(calendar, posted, metric, until=until)
    assert (got.seconds, got.stopped_at) == (expected.seconds, expected.stopped_at)
    assert all(a < b < c for (a, b), (c, _) in zip(got.spans, got.spans[1:], strict=False))
    assert sum((b - a) // timedelta(seconds=1) for a, b in got.spans) == got.seconds
