"""Ticket KPIs in the payment formula, against a month worked out by hand
(`tests/ticket_examples.py`), and the terms that declare them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.aggregates import events_digest
from shared.core.payment import TicketRecord, compute_statement
from shared.core.terms import Terms
from shared.core.ticket_kpis import breach_bound, counted_tickets, hours_of, ticket_states
from shared.core.tickets import TicketEventIn
from tests.ticket_examples import EXPECTED, JULY, JUNE, PERIOD, TOTAL, ticket_terms


def records(items: list[dict[str, Any]]) -> list[TicketRecord]:
    found = []
    for item in items:
        event = TicketEventIn.model_validate(item)
        found.append(
            TicketRecord(str(event.id()), event.ticket_id, event.type, event.at, event.priority)
        )
    return found


TERMS = Terms.model_validate(ticket_terms())


def test_a_month_of_tickets_bills_as_worked_out_by_hand() -> None:
    statement = compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE + JULY))
    lines = {line.kpi: line for line in statement.lines if line.kind == "sla_credit"}
    for kpi, (amount, tickets, value) in EXPECTED.items():
        line = lines[kpi]
        assert (str(line.amount), line.derivation.tickets) == (amount, tickets), kpi
        assert line.derivation.events == tickets
        assert Decimal(str(line.derivation.value)) == Decimal(value), kpi
    # the digest covers the June events of the tickets counted (E's July event is not read)
    c_events = [r.event_id for r in records(JUNE) if r.ticket_id == "C"]
    assert lines["p2_resolution"].derivation.events_digest == events_digest(c_events)
    p1_events = [r.event_id for r in records(JUNE) if r.ticket_id != "C"]
    assert lines["p1_response"].derivation.events_digest == events_digest(p1_events)
    assert str(statement.total) == TOTAL


def test_a_ticket_breached_at_one_close_does_not_count_again_when_it_stops() -> None:
    july = ticket_states(TERMS, "2026-07", records(JUNE + JULY))
    assert july["p1_resolution"].count == 0  # E ran past 8 h at June's close
    assert july["p1_response"].count == 0


def test_events_after_the_period_change_nothing_and_order_does_not_matter() -> None:
    june = compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE))
    shuffled = compute_statement(TERMS, PERIOD, [], [], tickets=records(JULY + JUNE[::-1]))
    twice = compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE + JUNE + JULY))
    assert june == shuffled == twice


def test_measurements_never_feed_a_ticket_kpi() -> None:
    from shared.core.payment import Observation

    fake = Observation("m-1", "p2_resolution", Decimal(1), datetime.fromisoformat(JUNE[0]["at"]))
    with_fake = compute_statement(TERMS, PERIOD, [fake], [], tickets=records(JUNE))
    assert with_fake == compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE))


def test_a_ticket_whose_events_no_helpdesk_produces_is_not_counted() -> None:
    broken = [
        *JUNE,
        {**JUNE[0], "ticket_id": "X"},
        {**JUNE[0], "ticket_id": "X", "type": "resumed"},
    ]
    states = ticket_states(TERMS, PERIOD, records(broken))
    assert "X" not in {ticket for ticket, _ in states["p1_response"].items()}


def test_a_late_event_of_a_counted_ticket_changes_the_digest() -> None:
    late = {**JUNE[11], "type": "responded", "at": "2026-06-30T09:30:00+02:00"}
    before = compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE))
    after = compute_statement(TERMS, PERIOD, [], [], tickets=records([*JUNE, late]))
    line = {x.kpi: x for x in before.lines}["p1_response"]
    now = {x.kpi: x for x in after.lines}["p1_response"]
    assert line.derivation.events == now.derivation.events == 4
    assert line.derivation.events_digest != now.derivation.events_digest
    assert (line.derivation.value, now.derivation.value) == (0.5, 0.75)  # D answered in 30 min


def test_hours_are_decimal_to_the_second() -> None:
    assert hours_of(5400) == Decimal("1.5")
    assert hours_of(1) == Decimal("0.000277777777777778")


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda t: t.pop("calendar"), ("calendar",)),
        (lambda t: t["kpis"][0].update(ticket_metric="answered"), ("kpis", 0, "ticket_metric")),
        (lambda t: t["kpis"][0].update(priority="P5"), ("kpis", 0, "priority")),
        (
            lambda t: t["kpis"][0].update(ticket_metric=None),
            ("kpis", 0, "priority"),
        ),
        (lambda t: t["calendar"]["hours"].pop("sun"), ("calendar", "hours", "sun")),
        (lambda t: t["kpis"][0].update(sources=["customer"]), ("kpis", 0, "ticket_metric")),
    ],
    ids=[
        "no-calendar",
        "unknown-metric",
        "unknown-priority",
        "priority-alone",
        "no-sunday",
        "sources",
    ],
)
def test_ticket_terms_are_refused_naming_the_field(change: Any, loc: tuple[Any, ...]) -> None:
    terms = ticket_terms()
    change(terms)
    with pytest.raises(ValidationError) as caught:
        Terms.model_validate(terms)
    assert [error["loc"] for error in caught.value.errors()] == [loc]


def test_a_snapshot_measures_running_tickets_up_to_then() -> None:
    """On 30 June at 09:30, D has run half an hour (not yet past 1 h) and E 9.5 h (past 8)."""
    as_of = datetime.fromisoformat("2026-06-30T09:30:00+02:00")
    states = ticket_states(TERMS, PERIOD, records(JUNE), as_of)
    assert [t for t, _ in states["p1_response"].items()] == ["A", "B", "E"]
    assert dict(states["p1_resolution"].items())["E"] == Decimal("9.5")
    after_the_end = datetime.fromisoformat("2026-07-05T00:00:00+02:00")
    assert compute_statement(
        TERMS, PERIOD, [], [], tickets=records(JUNE), as_of=after_the_end
    ) == compute_statement(TERMS, PERIOD, [], [], tickets=records(JUNE))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text + "+00:00")


def test_counted_tickets_give_each_tickets_hours_spans_and_breach() -> None:
    counted = counted_tickets(TERMS, PERIOD, records(JUNE + JULY))
    response = {t.ticket_id: t for t in counted["p1_response"]}
    assert {k: (t.hours, t.breached, t.running) for k, t in response.items()} == {
        "A": (Decimal("0.5"), False, False),
        "B": (Decimal("1.5"), True, False),
        "D": (Decimal(9), True, True),  # unanswered at June's close
        "E": (Decimal("0.75"), False, False),
    }
    # B: Wednesday 17-18, Corpus Christi closed, Friday 09:00-09:30 (Berlin, UTC+2)
    assert response["B"].spans == (
        (utc("2026-06-03T15:00:00"), utc("2026-06-03T16:00:00")),
        (utc("2026-06-05T07:00:00"), utc("2026-06-05T07:30:00")),
    )
    (c,) = counted["p2_resolution"]
    assert (c.ticket_id, c.priority, c.hours, c.breached) == ("C", "P2", Decimal(18), True)
    assert c.spans == (
        (utc("2026-06-15T07:00:00"), utc("2026-06-15T16:00:00")),
        (utc("2026-06-16T07:00:00"), utc("2026-06-16T16:00:00")),
    )
    (mean,) = counted["p2_response"]
    assert (mean.hours, mean.breached) == (Decimal(4), False)  # at its bound, not past it


def test_the_states_are_the_counted_tickets() -> None:
    counted = counted_tickets(TERMS, PERIOD, records(JUNE))
    states = ticket_states(TERMS, PERIOD, records(JUNE))
    for name, tickets in counted.items():
        assert sorted(states[name].items()) == [(t.ticket_id, t.hours) for t in tickets]
        ids = [i for t in tickets for i in t.event_ids]
        assert states[name].digest() == events_digest(ids)


@pytest.mark.parametrize(
    ("changes", "bound"),
    [
        ({}, Decimal(16)),  # the smallest tier's breach
        ({"credits": []}, Decimal(16)),  # no tier: the target
        ({"credits": [{"breach": 18, "percent": 3}, {"breach": 20, "percent": 5}]}, Decimal(18)),
        ({"objective": ">=", "target": 1}, None),  # more hours better: no bound
    ],
)
def test_breach_bound(changes: dict[str, Any], bound: Decimal | None) -> None:
    document = ticket_terms()
    document["kpis"][3] |= changes
    kpi = Terms.model_validate(document).kpis[3]
    assert breach_bound(kpi) == bound
    assert breach_bound(TERMS.kpis[0]) == Decimal(1)  # the threshold
