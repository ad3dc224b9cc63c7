"""Ticket events in the ledger's fold: store them, refresh the open periods they touch, and
correct the closed periods a late one changes (docs/tickets.md).

A ticket event at instant `at` can change the statement of the period `at` falls in and of
any later one (a ticket counts in the period its clock stops), so it is late for every
closed period from its own on. Such an event is applied one at a time in bus order: each of
those periods is recomputed with the ticket events up to it, and an adjustment is posted
wherever the money moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import closing, journal_store, store, ticket_store
from services.ledger.book import Book, open_books, ratings_of, tickets_for
from services.ledger.book import inputs as book_inputs
from services.ledger.domain import posting
from shared.bus import Message
from shared.consuming import Delivered
from shared.core import periods
from shared.core.payment import Observation, TicketRecord, compute_statement, kpi_credit
from shared.core.terms import Terms
from shared.core.ticket_kpis import ticket_states
from shared.events import TicketEventRecorded

Refuse = Callable[[Delivered, Book, str], tuple[str, Message] | None]
"""The fold's check of a late event: a dead letter if it is too late, else None."""


async def fold_tickets(
    conn: AsyncConnection, delivered: Sequence[Delivered], fx: closing.Effects, refuse: Refuse
) -> set[tuple[str, str]]:
    """Store new ticket events; return the open periods to refresh (from the event's own to
    the current one: a ticket counts where its clock stops). An event that can change a
    closed period posts corrections; one too late goes to the dead letters (`refuse`)."""
    books = await open_books(conn, (d.event.contract_id for d in delivered))
    rows, recorded = [], {}
    for d in delivered:
        book = books[d.event.contract_id]
        event = TicketEventRecorded.model_validate(d.event.data)
        period = periods.period_of(event.at, book.timezone)
        if period in book.closed:
            letter = refuse(d, book, period)
            if letter is not None:
                fx.out.append(letter)
                continue
        rows.append(
            ticket_store.TicketRow(
                event_id=str(d.event.event_id),
                contract_id=d.event.contract_id,
                period=period,
                ticket_id=event.ticket_id,
                type=event.type,
                at=event.at,
                priority=event.priority,
                bus_partition=d.partition,
                bus_offset=d.offset,
            )
        )
        recorded[rows[-1].event_id] = d.event.recorded_at
    touched = set()
    for row in await ticket_store.insert_new(conn, rows):
        book = books[row.contract_id]
        if any(closed >= row.period for closed in book.closed):
            await correct_late_ticket(conn, book, row, fx, recorded[row.event_id])
        current = periods.period_of(recorded[row.event_id], book.timezone)
        since = periods.periods(row.period, max(current, row.period))
        touched |= {(row.contract_id, p) for p in since if p not in book.closed}
    return touched


async def correct_late_ticket(
    conn: AsyncConnection,
    book: Book,
    row: ticket_store.TicketRow,
    fx: closing.Effects,
    at: datetime,
) -> None:
    """Recompute every closed period from the event's own on whose ticket KPIs' credit the
    event changes, with the ticket events up to it on the bus, and post what changed
    (posted at `at`, when the event was recorded)."""
    base_inputs = await book_inputs(conn, book.contract_id)
    for period in sorted(p for p in book.closed if p >= row.period):
        found = book.terms_for(period)
        if found is None or not found[0].ticket_kpis:
            continue
        terms, version = found
        tickets = await tickets_for(conn, terms, book.contract_id, period, row.bus_offset)
        if not moves_money(terms, period, tickets, row.event_id):
            continue  # read no measurements for a period whose money stays
        measured = await store.period_measurements(conn, book.contract_id, period)
        observations = [Observation(m.event_id, m.kpi, m.number, m.occurred_at) for m in measured]
        rated = ratings_of(await store.period_ratings(conn, book.contract_id, period))
        recomputed = compute_statement(
            terms, period, observations, rated, terms_version=version, tickets=tickets
        )
        posted = posting.effective_amounts(
            await journal_store.entries(conn, book.contract_id), period
        )
        inputs = {
            **base_inputs,
            ticket_store.TOPIC: {str(row.bus_partition): {"offset": row.bus_offset}},
            "cause": {
                "topic": ticket_store.TOPIC,
                "partition": row.bus_partition,
                "offset": row.bus_offset,
            },
        }
        into = periods.first_open_after(period, set(book.closed))
        bodies = posting.correction_bodies(recomputed, posted, into, at, [row.event_id], inputs)
        await closing.post(conn, book, bodies, fx)


def moves_money(terms: Terms, period: str, tickets: Sequence[TicketRecord], event_id: str) -> bool:
    """Whether the ticket event `event_id` (among `tickets`) changes the credit tier of one
    of the period's ticket KPIs; the money of a closed period moves only then."""
    without = [t for t in tickets if t.event_id != event_id]
    before, after = ticket_states(terms, period, without), ticket_states(terms, period, tickets)
    return any(
        kpi_credit(kpi, before[kpi.name]).tier != kpi_credit(kpi, after[kpi.name]).tier
        for kpi in terms.ticket_kpis
    )
