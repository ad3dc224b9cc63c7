"""A period's counted tickets, as the statement's ticket KPIs counted them (docs/tickets.md):
on request, each ticket's hours and spans; with each statement, the breached ones.

Computed by `shared/core/ticket_kpis.counted_tickets`, the function the statement's lines
come from, over the ledger's stored ticket events; a closed period reads them up to the cut
its final statement recorded, so the answer is that statement's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import journal_store, ticket_store
from services.ledger.book import Book, tickets_for
from shared.core.aggregates import events_digest
from shared.core.terms import Terms
from shared.core.ticket_kpis import CountedTicket, breach_bound, counted_tickets
from shared.core.tickets import at_text
from shared.events import MAX_BREACHED_TICKETS, BreachedTicket, TicketBreaches


class Span(BaseModel):
    """An interval of business time that counted."""

    start: str = Field(description="UTC instant, to the second")
    end: str


class CountedTicketView(BaseModel):
    """One counted ticket: an id, never ticket text."""

    ticket_id: str
    priority: str | None
    hours: str = Field(description="business hours, a decimal string")
    breached: bool | None = Field(description="past the KPI's bound (None: it has none)")
    running_past_threshold: bool = Field(description="counted running past it at close")
    spans: list[Span] = Field(description="the business time that counted, UTC")


class PeriodTicketsView(BaseModel):
    """What `GET …/periods/{period}/tickets` answers (docs/tickets.md)."""

    contract_id: str
    period: str
    kpi: str
    metric: str
    priority: str | None
    bound_hours: str | None
    as_of: str | None = Field(description="running tickets measured to (None: period end)")
    tickets: int
    events_digest: str
    items: list[CountedTicketView]


@dataclass(frozen=True)
class PeriodTickets:
    """Each ticket KPI's counted tickets in a period, and the instant they were measured to
    (None: the period's end)."""

    terms: Terms
    counted: dict[str, list[CountedTicket]]
    as_of: datetime | None


async def period_tickets(
    conn: AsyncConnection,
    book: Book,
    period: str,
    as_of: datetime | None,
    upto_offset: int | None = None,
) -> PeriodTickets | None:
    """The counted tickets of `period` as its statement counts them (None without terms in
    force): running tickets measured up to `as_of` (None: the period's end), from the ticket
    events up to bus offset `upto_offset` (None: all)."""
    found = book.terms_for(period)
    if found is None:
        return None
    terms = found[0]
    tickets = await tickets_for(conn, terms, book.contract_id, period, upto_offset)
    return PeriodTickets(terms, counted_tickets(terms, period, tickets, as_of), as_of)


async def requested(
    conn: AsyncConnection, book: Book, period: str, now: datetime
) -> PeriodTickets | None:
    """What the ticket endpoint answers: a closed period's tickets as its final statement
    counted them (from the ticket events up to the cut it recorded), an open one's measured
    up to `now`, as its provisional statement does."""
    final = await journal_store.final_statement(conn, book.contract_id, period)
    if final is None:
        return await period_tickets(conn, book, period, now)
    cut = final.get("inputs", {}).get(ticket_store.TOPIC, {})
    upto = max((place["offset"] for place in cut.values()), default=-1)
    return await period_tickets(conn, book, period, None, upto)


def hours_text(hours: Decimal) -> str:
    """Hours as the decimal the formula counts, without trailing zeros: "1.5", "18"."""
    return f"{hours.normalize():f}"


def kpi_tickets(
    found: PeriodTickets, contract_id: str, period: str, kpi_name: str
) -> PeriodTicketsView:
    """One ticket KPI's counted tickets, with the line's count and digest, and each ticket's
    hours, breach and spans (UTC)."""
    kpi = next(k for k in found.terms.ticket_kpis if k.name == kpi_name)
    assert kpi.ticket_metric is not None
    counted = found.counted.get(kpi_name, [])
    bound = breach_bound(kpi)
    return PeriodTicketsView(
        contract_id=contract_id,
        period=period,
        kpi=kpi.name,
        metric=kpi.ticket_metric,
        priority=kpi.priority,
        bound_hours=None if bound is None else hours_text(bound),
        as_of=None if found.as_of is None else at_text(found.as_of),
        tickets=len(counted),
        events_digest=events_digest(i for t in counted for i in t.event_ids),
        items=[
            CountedTicketView(
                ticket_id=t.ticket_id,
                priority=t.priority,
                hours=hours_text(t.hours),
                breached=t.breached,
                running_past_threshold=t.running,
                spans=[Span(start=at_text(a), end=at_text(b)) for a, b in t.spans],
            )
            for t in counted
        ],
    )


def breaches(found: PeriodTickets | None) -> list[TicketBreaches]:
    """Per ticket KPI, its breached tickets (worst first, at most `MAX_BREACHED_TICKETS`)
    and how many there were: what a statement is published with, for the portal."""
    if found is None:
        return []
    listed = []
    for kpi in found.terms.ticket_kpis:
        breached = [t for t in found.counted.get(kpi.name, []) if t.breached]
        breached.sort(key=lambda t: (-t.hours, t.ticket_id))
        shown = [
            BreachedTicket(ticket_id=t.ticket_id, hours=hours_text(t.hours), running=t.running)
            for t in breached[:MAX_BREACHED_TICKETS]
        ]
        listed.append(TicketBreaches(kpi=kpi.name, breached=len(breached), tickets=shown))
    return listed
