"""Bus edge of the ledger: fold contract, measurement and dispute events into durable state.

One batch is one database transaction, outbox included; measurements are keyed by
`event_id`, so a batch delivered twice changes nothing the second time. Order inside a
batch: terms, then measurements (late ones become corrections), then close requests and
disputes — each close records how far the contract's measurements had been applied.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ledger import closing, journal_store, late_tickets, store
from services.ledger.book import Book, open_book, open_books
from services.ledger.fold.rows import fold_aggregates, insert_new_measurements
from shared import deadletters, jsonutil
from shared.bus import Message
from shared.consuming import Delivered
from shared.core import periods
from shared.core.periods import PeriodFinder, period_of
from shared.core.review_score import review_source
from shared.core.terms import Terms
from shared.deadletters import DeadLetter
from shared.events import (
    DisputeOpened,
    DisputeResolved,
    Envelope,
    MeasurementRecorded,
    PeriodCloseRequested,
    ReviewLineReleased,
    ReviewSubmitted,
    TermsAgreed,
    TicketEventRecorded,
)
from shared.measured import DeliveredMeasurement, Incoming
from shared.signing import Keyring
from shared.telemetry import span

GROUP = "ledger"
REVIEW_TYPES = frozenset({ReviewSubmitted.TYPE, ReviewLineReleased.TYPE})


def _nothing() -> None:
    pass


async def apply_delivered(
    engine: AsyncEngine,
    incoming: Sequence[Incoming],
    *,
    keyring: Keyring | None,
    cpu_done: Callable[[], None] = _nothing,
) -> set[tuple[str, str]]:
    """Apply a batch in one transaction; return the (contract, period)s it changed.
    Measurements are best given as `DeliveredMeasurement`s (`decode_measurements`); one
    given as an envelope is read from it. Final statements are signed with `keyring` (None:
    left unsigned, as replay's scratch tables do). `cpu_done` is called once what is left of
    the batch is mostly the database's work (the consumer then reads its next batch)."""
    delivered = [d for d in incoming if isinstance(d, Delivered)]
    measurements = (
        [_measurement(d) for d in incoming if d.type == MeasurementRecorded.TYPE]
        if delivered
        else cast("Sequence[DeliveredMeasurement]", incoming)  # the fold's usual batch
    )
    async with engine.begin() as conn:
        fx = closing.Effects(keyring=keyring)
        for d in delivered:
            if d.type == TermsAgreed.TYPE:
                fx.touched |= await apply_terms(conn, d.event) or set()
        if measurements:
            with span("ledger.fold measurements", events=len(measurements)):
                fx.touched |= await _fold_measurements(conn, measurements, fx, cpu_done)
        reviews = [d for d in delivered if d.type in REVIEW_TYPES]
        if reviews:
            with span("ledger.fold reviews", events=len(reviews)):
                fx.touched |= await _fold_reviews(conn, reviews, fx)
        tickets = [d for d in delivered if d.type == TicketEventRecorded.TYPE]
        if tickets:
            with span("ledger.fold tickets", events=len(tickets)):
                fx.touched |= await late_tickets.fold_tickets(conn, tickets, fx, _too_late_ticket)
        books: dict[str, Book] = {}
        for d in delivered:
            if d.type in COMMANDS:
                book = books.get(d.event.contract_id) or await open_book(conn, d.event.contract_id)
                books[d.event.contract_id] = book
                await COMMANDS[d.event.type](conn, book, d, fx)
        await store.mark_dirty(conn, fx.touched)
        await journal_store.enqueue(conn, fx.out)
    return fx.touched


async def apply_terms(conn: AsyncConnection, event: Envelope) -> set[tuple[str, str]] | None:
    """Store a contract version (None if that version exists already); return the periods
    that need a fresh provisional statement: those with data, and every open period from
    the version's `effective_from` to the current one (a month with no events is billed too)."""
    agreed = event.payload()
    assert isinstance(agreed, TermsAgreed)
    Terms.model_validate(agreed.terms)  # terms that bypassed the API never get in
    added = await store.add_terms(
        conn,
        event.contract_id,
        agreed.version,
        agreed.terms,
        str(event.event_id),
        event.recorded_at,
    )
    if not added:
        return None
    book = await open_book(conn, event.contract_id)
    current = periods.current_period(event.recorded_at, book.timezone)
    first = str(agreed.terms["effective_from"])
    opened = {(event.contract_id, p) for p in periods.periods(first, current)} - {
        (event.contract_id, p) for p in book.closed
    }
    return await store.periods_with_data(conn, event.contract_id) | opened


async def _fold_measurements(
    conn: AsyncConnection,
    measurements: Sequence[DeliveredMeasurement],
    fx: closing.Effects,
    cpu_done: Callable[[], None],
) -> set[tuple[str, str]]:
    books = await open_books(conn, set(map(_CONTRACT, measurements)))
    finders = {c: PeriodFinder(book.timezone) for c, book in books.items()}
    recorded: dict[str, datetime] = {}
    any_closed = any(book.closed for book in books.values())
    if not any_closed:
        # no period closed yet (the usual case): none is late, so none can be too late
        rows = [_row(m, finders[m.contract_id]) for m in measurements]
    else:
        rows = []
        for m in measurements:
            book = books[m.contract_id]
            row = _row(m, finders[book.contract_id])
            if row.period in book.closed and _too_late(book, row.period, m.recorded_at):
                fx.out.append(_refusal(m, book, row.period))
                continue
            rows.append(row)
            recorded[row.event_id] = m.recorded_at
    cpu_done()
    new = await insert_new_measurements(conn, rows)
    late: dict[tuple[str, str], list[store.MeasurementRow]] = defaultdict(list)
    current: list[store.MeasurementRow] = []
    if not any_closed:
        current = new  # none of them is late
    else:
        for row in new:
            (
                late[(row.contract_id, row.period)]
                if row.period in books[row.contract_id].closed
                else current
            ).append(row)
    for (contract_id, period), group in sorted(late.items()):
        group.sort(key=lambda r: (r.bus_partition, r.bus_offset))
        await closing.correct_late(
            conn, books[contract_id], period, group, [recorded[r.event_id] for r in group], fx
        )
    return await fold_aggregates(conn, current)


async def _fold_reviews(
    conn: AsyncConnection, reviews: Sequence[Delivered], fx: closing.Effects
) -> set[tuple[str, str]]:
    """Ratings and releases, in bus order; one of a closed period corrects it."""
    books = await open_books(conn, (d.contract_id for d in reviews))
    touched = set()
    for d in reviews:
        book = books[d.event.contract_id]
        row = _review_row(d, book)
        if row.period in book.closed and _too_late(book, row.period, d.event.recorded_at):
            fx.out.append(_refusal(d, book, row.period))
            continue
        new = (
            await store.insert_new_releases(conn, [row])
            if isinstance(row, store.ReleaseRow)
            else await store.insert_new_ratings(conn, [row])
        )
        if not new:
            continue
        if row.period in book.closed:
            await closing.correct_late_reviews(
                conn, book, row.period, [row], [d.event.recorded_at], fx
            )
        else:
            touched.add((row.contract_id, row.period))
    return touched


def _review_row(d: Delivered, book: Book) -> store.RatingRow | store.ReleaseRow:
    event = d.event
    payload = event.payload()
    if isinstance(payload, ReviewLineReleased):
        return store.ReleaseRow(
            event_id=str(event.event_id),
            contract_id=event.contract_id,
            period=payload.period,
            bus_partition=d.partition,
            bus_offset=d.offset,
        )
    assert isinstance(payload, ReviewSubmitted)
    return store.RatingRow(
        event_id=str(event.event_id),
        contract_id=event.contract_id,
        period=period_of(event.occurred_at, book.timezone),
        reviewer=payload.reviewer_pseudonym,
        rating=payload.rating,
        occurred_at=event.occurred_at,
        flags=jsonutil.dumps(payload.flags).decode(),
        bus_partition=d.partition,
        bus_offset=d.offset,
        source=review_source(event.source),
    )


def _too_late(book: Book, period: str, recorded_at: datetime) -> bool:
    found = book.terms_for(period)
    limit = found[0].late_events_months if found else 12
    return periods.months_between(period, period_of(recorded_at, book.timezone)) > limit


def _too_late_ticket(d: Delivered, book: Book, period: str) -> tuple[str, Message] | None:
    """A dead letter for a ticket event of a closed period past the late window, else None."""
    return _refusal(d, book, period) if _too_late(book, period, d.event.recorded_at) else None


def _refusal(d: Incoming, book: Book, period: str) -> tuple[str, Message]:
    reason = f"late event for {period}, closed and older than the contract's late_events_months"
    return _dead_letter(d, book, reason, "late_events_months")


def _dead_letter(d: Incoming, book: Book, reason: str, kind: str) -> tuple[str, Message]:
    event_id, measurement_id = deadletters.ids_in(d.raw)
    letter = DeadLetter(
        topic=d.topic,
        key=book.contract_id,
        value=d.raw,
        reason=reason,
        partition=d.partition,
        offset=d.offset,
        event_id=event_id,
        measurement_id=measurement_id,
        group=GROUP,
        kind=kind,
    )
    return deadletters.outbox_item(letter)


def _measurement(d: Incoming) -> DeliveredMeasurement:
    if isinstance(d, DeliveredMeasurement):
        return d
    return DeliveredMeasurement.of(d.event, d.topic, d.partition, d.offset, d.event.to_json())


def _row(m: DeliveredMeasurement, period_of_: PeriodFinder) -> store.MeasurementRow:
    return _new_tuple(  # one per measurement folded: as `shared.bus.kafka._record`
        store.MeasurementRow,
        (
            m.event_id,
            m.contract_id,
            period_of_(m.occurred_at),
            m.kpi,
            m.value,
            m.occurred_at,
            m.partition,
            m.offset,
            m.party,
        ),
    )


_new_tuple = tuple.__new__
_CONTRACT = operator.attrgetter("contract_id")


async def _close(conn: AsyncConnection, book: Book, d: Delivered, fx: closing.Effects) -> None:
    event = d.event
    request = event.payload()
    assert isinstance(request, PeriodCloseRequested)
    problem = await closing.close_period(
        conn, book, request.period, event.recorded_at, fx, _cause(d)
    )
    if problem:
        fx.out.append(_dead_letter(d, book, problem, "refused"))


async def _dispute_opened(
    conn: AsyncConnection, book: Book, d: Delivered, fx: closing.Effects
) -> None:
    event = d.event
    opened = event.payload()
    assert isinstance(opened, DisputeOpened)
    await journal_store.put_dispute(
        conn,
        {
            **opened.model_dump(mode="json"),
            "contract_id": event.contract_id,
            "status": "open",
            "opened_at": event.recorded_at.isoformat(),
        },
    )


async def _dispute_resolved(
    conn: AsyncConnection, book: Book, d: Delivered, fx: closing.Effects
) -> None:
    event = d.event
    resolved = event.payload()
    assert isinstance(resolved, DisputeResolved)
    dispute = await journal_store.dispute(conn, resolved.dispute_id)
    if dispute is None or dispute["status"] != "open":
        return
    resolution = {**resolved.model_dump(mode="json"), "resolved_at": event.recorded_at.isoformat()}
    await closing.resolve_dispute(conn, book, dispute, resolution, event.recorded_at, fx, _cause(d))


def _cause(d: Delivered) -> dict[str, Any]:
    return {"topic": d.topic, "partition": d.partition, "offset": d.offset}


Command = Callable[[AsyncConnection, Book, Delivered, closing.Effects], Awaitable[None]]
COMMANDS: dict[str, Command] = {
    PeriodCloseRequested.TYPE: _close,
    DisputeOpened.TYPE: _dispute_opened,
    DisputeResolved.TYPE: _dispute_resolved,
}
