"""A ticket's clock, computed by hand: Bavarian office hours Mon-Fri 09:00-18:00 (Berlin)."""

import random
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.core.calendars import BusinessCalendar
from shared.core.clock import (
    Metric,
    TicketSequenceError,
    business_duration,
    check_fragment,
    measure,
    spans,
    stopped_at,
)
from shared.core.periods import period_bounds, period_of
from shared.core.tickets import TicketEventIn

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def calendar(weekdays: list[str], weekend: list[str] | None = None) -> BusinessCalendar:
    hours = {day: weekdays for day in WEEKDAYS} | {"sat": weekend or [], "sun": weekend or []}
    return BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": hours,
            "holidays": {"country": "DE", "subdivision": "BY", "dates": ["2026-12-24"]},
        }
    )


OFFICE = calendar(["09:00-18:00"])
ALWAYS = calendar(["00:00-24:00"], ["00:00-24:00"])


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def ev(type_: str, when: str, **extra: Any) -> TicketEventIn:
    return TicketEventIn(
        contract_id="acme-2026", ticket_id="SUP-1", type=type_, at=local(when), **extra
    )


def hours(events: list[TicketEventIn], metric: Metric, cal: BusinessCalendar = OFFICE) -> Fraction:
    return business_duration(cal, events, metric)


def test_within_one_day() -> None:
    ticket = [
        ev("opened", "2026-03-10 10:00"),  # a Tuesday
        ev("responded", "2026-03-10 11:30"),
        ev("resolved", "2026-03-10 15:45"),
    ]
    assert hours(ticket, "response") == Fraction(3, 2)  # 10:00 -> 11:30
    assert hours(ticket, "resolution") == Fraction(23, 4)  # 10:00 -> 15:45 = 5 h 45 min


def test_the_weekend_does_not_count() -> None:
    ticket = [ev("opened", "2026-03-13 17:00"), ev("resolved", "2026-03-16 10:00")]  # Fri, Mon
    assert hours(ticket, "resolution") == 2  # Fri 17:00-18:00 + Mon 09:00-10:00 = 1 + 1


def test_a_public_holiday_from_the_holidays_data_does_not_count() -> None:
    # Mon 5 Jan 17:00 -> Wed 7 Jan 09:30, Tue 6 Jan is Epiphany in Bavaria: 1 + 0 + 0.5
    ticket = [ev("opened", "2026-01-05 17:00"), ev("resolved", "2026-01-07 09:30")]
    assert hours(ticket, "resolution") == Fraction(3, 2)


def test_an_extra_date_does_not_count() -> None:
    # Wed 23 Dec 16:00-18:00 = 2; Thu 24 (extra date), Fri 25 (Christmas), weekend: 0;
    # Mon 28 Dec 09:00-10:00 = 1 (the 26th, a Saturday, is a holiday anyway): 3 h
    ticket = [ev("opened", "2026-12-23 16:00"), ev("resolved", "2026-12-28 10:00")]
    assert hours(ticket, "resolution") == 3


def test_an_out_of_hours_opening_starts_counting_at_the_next_working_hour() -> None:
    ticket = [ev("opened", "2026-03-10 20:00"), ev("responded", "2026-03-11 09:15")]
    assert hours(ticket, "response") == Fraction(1, 4)  # Wed 09:00 -> 09:15
    assert spans(OFFICE, ticket, "response") == (
        (datetime(2026, 3, 11, 8, 0, tzinfo=UTC), datetime(2026, 3, 11, 8, 15, tzinfo=UTC)),
    )


def test_a_dst_night_outside_working_hours_changes_nothing() -> None:
    # Fri 27 Mar 17:30 CET -> Mon 30 Mar 09:30 CEST: 0.5 + 0.5, though 62 h passed
    ticket = [ev("opened", "2026-03-27 17:30"), ev("resolved", "2026-03-30 09:30")]
    assert hours(ticket, "resolution") == 1


@pytest.mark.parametrize(
    ("saturday", "sunday", "expected"),
    [
        # Sat 23:00 -> 24:00 = 1; Sun 00:00 -> 23:00 shows 23 wall hours, 02:00-03:00 never
        # shows: 22 real hours; 1 + 22 = 23
        ("2026-03-28 23:00", "2026-03-29 23:00", 23),
        # Sun 25 Oct shows 02:00-03:00 twice: 1 + 23 + 1 = 25
        ("2026-10-24 23:00", "2026-10-25 23:00", 25),
    ],
)
def test_a_dst_night_inside_working_hours_counts_its_real_hours(
    saturday: str, sunday: str, expected: int
) -> None:
    ticket = [ev("opened", saturday), ev("resolved", sunday)]
    assert hours(ticket, "resolution", ALWAYS) == expected


def test_paused_time_does_not_count() -> None:
    ticket = [
        ev("opened", "2026-03-10 10:00"),
        ev("paused", "2026-03-10 11:00"),
        ev("resumed", "2026-03-11 10:00"),
        ev("responded", "2026-03-11 11:00"),
        ev("resolved", "2026-03-11 12:00"),
    ]
    assert hours(ticket, "response") == 2  # Tue 10:00-11:00 + Wed 10:00-11:00
    assert hours(ticket, "resolution") == 3  # Tue 10:00-11:00 + Wed 10:00-12:00


def test_a_response_while_paused_stops_the_response_clock_where_it_paused() -> None:
    ticket = [
        ev("opened", "2026-03-10 10:00"),
        ev("paused", "2026-03-10 11:00"),
        ev("responded", "2026-03-10 14:00"),
        ev("resumed", "2026-03-10 15:00"),
        ev("resolved", "2026-03-10 16:30"),
    ]
    assert hours(ticket, "response") == 1  # 10:00-11:00
    assert hours(ticket, "resolution") == Fraction(5, 2)  # 10:00-11:00 + 15:00-16:30
    assert stopped_at(ticket, "response") == local("2026-03-10 14:00")


def test_resolved_while_paused_stops_the_clock_at_the_resolution() -> None:
    ticket = [
        ev("opened", "2026-03-10 10:00"),
        ev("paused", "2026-03-10 11:00"),
        ev("resolved", "2026-03-11 12:00"),
    ]
    assert hours(ticket, "resolution") == 1  # 10:00-11:00; paused until resolved
    assert stopped_at(ticket, "resolution") == local("2026-03-11 12:00")


def test_a_reopened_ticket_resumes_its_clock_where_it_stopped() -> None:
    ticket = [
        ev("opened", "2026-03-09 09:00"),
        ev("resolved", "2026-03-09 10:00"),
        ev("reopened", "2026-03-10 09:30"),
        ev("responded", "2026-03-10 10:00"),
        ev("resolved", "2026-03-10 11:00"),
    ]
    assert hours(ticket, "resolution") == Fraction(5, 2)  # Mon 09:00-10:00 + Tue 09:30-11:00
    assert stopped_at(ticket, "resolution") == local("2026-03-10 11:00")
    # resolving answers the ticket: the response clock stopped at the first resolved
    assert hours(ticket, "response") == 1
    assert stopped_at(ticket, "response") == local("2026-03-09 10:00")
    still_open = ticket[:3]
    assert stopped_at(still_open, "resolution") is None
    # Mon 09:00-10:00 + Tue 09:30-18:00 + Wed 09:00-12:00 = 1 + 8.5 + 3
    assert business_duration(OFFICE, still_open, "resolution", until=local("2026-03-11 12:00")) == (
        Fraction(25, 2)
    )


def test_a_ticket_counts_in_the_month_its_clock_stopped() -> None:
    ticket = [ev("opened", "2026-03-31 17:00"), ev("resolved", "2026-04-01 10:00")]
    assert hours(ticket, "resolution") == 2  # Tue 31 Mar 17:00-18:00 + Wed 1 Apr 09:00-10:00
    stop = stopped_at(ticket, "resolution")
    assert stop is not None and period_of(stop, "Europe/Berlin") == "2026-04"
    # at March's close it was still running, with 1 h: breached in March if the threshold is less
    _, march_end = period_bounds("2026-03", "Europe/Berlin")
    assert stopped_at(ticket, "resolution", until=march_end) is None
    assert business_duration(OFFICE, ticket, "resolution", until=march_end) == 1


def test_an_event_at_the_close_belongs_to_the_next_period() -> None:
    _, march_end = period_bounds("2026-03", "Europe/Berlin")
    ticket = [ev("opened", "2026-03-31 17:00"), ev("resolved", "2026-04-01 00:00")]
    assert stopped_at(ticket, "resolution", until=march_end) is None
    assert stopped_at(ticket, "resolution") == march_end


def test_a_reply_after_the_resolution_changes_nothing() -> None:
    ticket = [
        ev("opened", "2026-03-10 10:00"),
        ev("resolved", "2026-03-10 11:00"),
        ev("responded", "2026-03-10 12:00"),
    ]
    assert stopped_at(ticket, "resolution") == local("2026-03-10 11:00")
    assert stopped_at(ticket, "response") == local("2026-03-10 11:00")
    assert hours(ticket, "resolution") == hours(ticket, "response") == 1  # 10:00 -> 11:00


def test_a_running_ticket_measured_at_the_close() -> None:
    ticket = [ev("opened", "2026-03-27 16:00")]
    # Fri 16:00-18:00 + Mon 30 Mar 9 h + Tue 31 Mar 9 h = 2 + 9 + 9
    until = local("2026-04-01 00:00")
    assert business_duration(OFFICE, ticket, "resolution", until=until) == 20
    assert business_duration(OFFICE, ticket, "response", until=until) == 20
    with pytest.raises(ValueError, match="resolution clock has not stopped"):
        business_duration(OFFICE, ticket, "resolution")
    # not opened yet at `until`: nothing counts, and nothing is wrong
    assert business_duration(OFFICE, ticket, "resolution", until=local("2026-03-01 00:00")) == 0
    with pytest.raises(ValueError, match="never opened"):
        business_duration(OFFICE, [], "resolution")


def test_two_spans_a_day() -> None:
    split = calendar(["08:00-12:00", "13:00-17:00"])
    ticket = [ev("opened", "2026-03-10 11:00"), ev("resolved", "2026-03-10 14:30")]
    assert hours(ticket, "resolution", split) == Fraction(5, 2)  # 11:00-12:00 + 13:00-14:30
    assert len(spans(split, ticket, "resolution")) == 2


def test_exact_to_the_second_and_no_finer() -> None:
    ticket = [ev("opened", "2026-03-10 09:00:00.999"), ev("responded", "2026-03-10 09:00:01.5")]
    assert hours(ticket, "response") == Fraction(1, 3600)  # 09:00:00 -> 09:00:01


def test_events_at_one_instant_apply_in_an_order_that_makes_sense() -> None:
    auto_ack = [ev("responded", "2026-03-10 10:00"), ev("opened", "2026-03-10 10:00")]
    assert hours(auto_ack, "response") == 0
    blink = [
        ev("opened", "2026-03-10 10:00"),
        ev("resumed", "2026-03-10 11:00"),
        ev("paused", "2026-03-10 11:00"),
        ev("reopened", "2026-03-10 12:00"),
        ev("resolved", "2026-03-10 12:00"),
        ev("resolved", "2026-03-10 13:00"),
    ]
    # paused then resumed at 11:00, resolved then reopened at 12:00: the clock never stops
    assert hours(blink, "resolution") == 3  # 10:00 -> 13:00
    assert spans(OFFICE, blink, "resolution") == (
        (datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC)),
    )


def test_the_order_of_the_input_does_not_matter() -> None:
    ticket = [
        ev("opened", "2026-03-09 09:00"),
        ev("paused", "2026-03-09 12:00"),
        ev("resumed", "2026-03-10 09:00"),
        ev("resolved", "2026-03-10 10:00"),
        ev("reopened", "2026-03-10 10:00"),
        ev("responded", "2026-03-10 11:00"),
        ev("resolved", "2026-03-11 09:30"),
    ]
    expected = measure(OFFICE, ticket, "resolution")
    # Mon 09:00-12:00 + Tue 09:00-10:00 + (resolved and reopened at 10:00) Tue 10:00-18:00
    # + Wed 09:00-09:30 = 3 + 1 + 8 + 0.5
    assert expected.hours == Fraction(25, 2)
    for seed in range(20):
        shuffled = random.Random(seed).sample(ticket, len(ticket))
        assert measure(OFFICE, shuffled, "resolution") == expected


@pytest.mark.parametrize(
    ("ticket", "index", "problem"),
    [
        ([ev("responded", "2026-03-10 09:00")], 0, "'responded' .* before 'opened'"),
        (
            [ev("opened", "2026-03-10 10:00"), ev("responded", "2026-03-10 09:00")],
            1,
            "'responded' at 2026-03-10T08:00:00Z is not allowed before 'opened'",
        ),
        (
            [ev("opened", "2026-03-10 09:00"), ev("opened", "2026-03-10 10:00")],
            1,
            "'opened' .* while the ticket is open",
        ),
        (
            [
                ev("opened", "2026-03-10 09:00"),
                ev("resolved", "2026-03-10 10:00"),
                ev("resolved", "2026-03-10 11:00"),
            ],
            2,
            "'resolved' .* after 'resolved' without 'reopened'",
        ),
        (
            [
                ev("opened", "2026-03-10 09:00"),
                ev("paused", "2026-03-10 10:00"),
                ev("paused", "2026-03-10 11:00"),
            ],
            2,
            "'paused' .* while the ticket is paused",
        ),
        (
            [ev("opened", "2026-03-10 09:00"), ev("resumed", "2026-03-10 10:00")],
            1,
            "'resumed' .* while the ticket is open",
        ),
        (
            [
                ev("opened", "2026-03-10 09:00"),
                ev("resolved", "2026-03-10 10:00"),
                ev("paused", "2026-03-10 11:00"),
            ],
            2,
            "'paused' .* after 'resolved' without 'reopened'",
        ),
        (
            [ev("opened", "2026-03-10 09:00"), ev("reopened", "2026-03-10 10:00")],
            1,
            "'reopened' .* while the ticket is open",
        ),
    ],
)
def test_a_sequence_no_helpdesk_produces_is_refused_naming_the_event(
    ticket: list[TicketEventIn], index: int, problem: str
) -> None:
    for metric in ("response", "resolution"):
        with pytest.raises(TicketSequenceError, match=problem) as caught:
            measure(OFFICE, ticket, metric, until=local("2027-01-01 00:00"))
        assert caught.value.index == index


def test_a_fragment_is_refused_only_if_no_history_could_explain_it() -> None:
    check_fragment([ev("resolved", "2026-03-10 10:00"), ev("reopened", "2026-03-10 11:00")])
    check_fragment([ev("resumed", "2026-03-10 10:00")])
    check_fragment([])
    with pytest.raises(TicketSequenceError, match=r"'resumed' .* while the ticket is open") as c:
        check_fragment([ev("opened", "2026-03-10 10:00"), ev("resumed", "2026-03-10 11:00")])
    assert c.value.index == 1
    with pytest.raises(TicketSequenceError) as caught:
        check_fragment(
            [
                ev("paused", "2026-03-10 10:00"),
                ev("resolved", "2026-03-10 11:00"),
                ev("resumed", "2026-03-10 12:00"),
            ]
        )
    assert caught.value.index == 2
