"""Ticket KPIs (docs/tickets.md, "Ticket KPIs"): a KPI's values in a period are the business
durations of its tickets, so the payment formula aggregates them like measurements.

Pure, shared by the ledger and the auditor through `compute_statement`. A ticket counts once
per stop of its clock, in the period the stop falls in; a ticket whose clock is still
running at the period's end and already past the KPI's `threshold` counts as breached in
that period (and not again when it stops later). A period reads only the events before its
end, so later events never change a period's statement unless they are late for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal

from shared.core.aggregates import KpiState, events_digest
from shared.core.calendars import BusinessCalendar, Interval
from shared.core.clock import Measure, TicketSequenceError, measure
from shared.core.periods import period_bounds
from shared.core.statement import exact
from shared.core.terms import Kpi, Terms
from shared.core.tickets import Priority, ticket_priority

HOURS_PLACES = Decimal("1e-18")
_WIDE = Context(prec=60)


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """One ticket event as the formula reads it (from the bus or the ledger's table)."""

    event_id: str
    ticket_id: str
    type: str
    at: datetime
    priority: Priority | None = None


class TicketKpiState(KpiState):
    """A ticket KPI's state: one value per ticket (`count` is the number of tickets), and
    the ids of the events read for them, which its digest covers: a late event of a
    counted ticket changes the digest even where the set of tickets stays the same."""

    __slots__ = ("_read",)

    def __init__(self) -> None:
        super().__init__()
        self._read: set[str] = set()

    def add_ticket(self, ticket_id: str, hours: Decimal, event_ids: Iterable[str]) -> None:
        if self.add(ticket_id, hours):
            self._read.update(event_ids)

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(self._read)

    def digest(self) -> str:
        return events_digest(self._read)


def hours_of(seconds: int) -> Decimal:
    """Business seconds as decimal hours, rounded half-to-even to 18 places (a second is
    1/3600 h, which no decimal holds exactly; 18 places tell every second apart)."""
    return _WIDE.divide(Decimal(seconds), Decimal(3600)).quantize(HOURS_PLACES, context=_WIDE)


@dataclass(frozen=True, slots=True)
class CountedTicket:
    """One ticket as a ticket KPI counted it in a period: its business hours, the UTC spans
    that counted, whether its clock was still running past the threshold at close, and
    whether it breached the KPI's bound (`breach_bound`; None without one)."""

    ticket_id: str
    priority: Priority | None
    hours: Decimal
    spans: tuple[Interval, ...]
    running: bool
    breached: bool | None
    event_ids: tuple[str, ...]


def breach_bound(kpi: Kpi) -> Decimal | None:
    """The hours past which one ticket breaches the KPI: its `threshold`, else (hours being
    better lower) the smallest `breach` of its credit tiers, else its `target`."""
    if kpi.threshold is not None:
        return kpi.threshold
    if kpi.objective != "<=":
        return None
    return min((tier.breach for tier in kpi.credits), default=kpi.target)


def ticket_states(
    terms: Terms,
    period: str,
    tickets: Iterable[TicketRecord],
    as_of: datetime | None = None,
) -> dict[str, TicketKpiState]:
    """Each ticket KPI's state in `period`: one value per counted ticket (so a line's
    `events` is the number of tickets, its digest that of their events read)."""
    states = {}
    for name, counted in counted_tickets(terms, period, tickets, as_of).items():
        state = states[name] = TicketKpiState()
        for ticket in counted:
            state.add_ticket(ticket.ticket_id, ticket.hours, ticket.event_ids)
    return states


def counted_tickets(
    terms: Terms,
    period: str,
    tickets: Iterable[TicketRecord],
    as_of: datetime | None = None,
) -> dict[str, list[CountedTicket]]:
    """Each ticket KPI's counted tickets in `period`, by ticket id. Events at or after the
    period's end are not read; an event id seen twice counts once. `as_of` (an open
    period's snapshot) measures running tickets up to then instead of the end."""
    kpis = terms.ticket_kpis
    if not kpis or terms.calendar is None:
        return {}
    start, end = period_bounds(period, terms.timezone)
    if as_of is not None:
        end = min(end, max(as_of, start))
    by_ticket: dict[str, list[TicketRecord]] = defaultdict(list)
    seen: set[str] = set()
    for record in tickets:
        if record.event_id in seen:
            continue
        seen.add(record.event_id)
        if record.at < end:
            by_ticket[record.ticket_id].append(record)
    counted: dict[str, list[CountedTicket]] = {kpi.name: [] for kpi in kpis}
    for ticket_id in sorted(by_ticket):
        events = by_ticket[ticket_id]
        priority = ticket_priority(events)
        for kpi in kpis:
            if kpi.priority is not None and priority != kpi.priority:
                continue
            clock = counted_measure(terms.calendar, events, kpi, start, end)
            if clock is None:
                continue
            bound = breach_bound(kpi)
            counted[kpi.name].append(
                CountedTicket(
                    ticket_id=ticket_id,
                    priority=priority,
                    hours=hours_of(clock.seconds),
                    spans=clock.spans,
                    running=clock.stopped_at is None,
                    breached=None if bound is None else clock.hours > exact(bound),
                    event_ids=tuple(event.event_id for event in events),
                )
            )
    return counted


def counted_measure(
    calendar: BusinessCalendar,
    events: Sequence[TicketRecord],
    kpi: Kpi,
    start: datetime,
    end: datetime,
) -> Measure | None:
    """The ticket's clock up to `end` when it counts in the period [start, end) (stopped
    there, or running past the threshold at `end`), else None."""
    assert kpi.ticket_metric is not None
    try:
        at_end = measure(calendar, events, kpi.ticket_metric, until=end)
        at_start = measure(calendar, events, kpi.ticket_metric, until=start)
    except TicketSequenceError:
        return None
    if _breached_running(at_start, kpi, events, start):
        return None  # counted as breached at an earlier close
    if at_end.stopped_at is not None:
        return at_end if start <= at_end.stopped_at else None
    return at_end if _breached_running(at_end, kpi, events, end) else None


def _breached_running(
    clock: Measure, kpi: Kpi, events: Sequence[TicketRecord], until: datetime
) -> bool:
    """Whether the ticket was open before `until`, its clock not stopped, and past the
    KPI's threshold."""
    opened = any(e.type == "opened" and e.at < until for e in events)
    return (
        opened
        and clock.stopped_at is None
        and kpi.threshold is not None
        and clock.hours > exact(kpi.threshold)
    )
