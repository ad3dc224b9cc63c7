"""Money that can be trusted: close a period, correct it after late events, settle disputes.

All of it runs inside the fold's transaction, so entries, closes and the outbox messages
announcing them are durable together, or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import journal_store, store
from services.ledger.book import Book, computed_statement, event_message, ratings_of
from services.ledger.book import inputs as book_inputs
from services.ledger.domain import posting
from shared import signing
from shared.bus import Message
from shared.core import periods
from shared.core.journal import EntryBody, JournalEntry
from shared.core.payment import PeriodStates, kpi_credit, statement_from_states
from shared.events import JournalEntryPosted, StatementFinalized


@dataclass
class Effects:
    """What a batch produces beyond its rows: messages for the outbox, periods to refresh."""

    out: list[tuple[str, Message]] = field(default_factory=list)
    touched: set[tuple[str, str]] = field(default_factory=set)


def cause_of(topic: str, row: store.MeasurementRow | store.RatingRow) -> dict[str, Any]:
    """The bus position of the event that caused a posting (replay orders by it)."""
    return {"topic": topic, "partition": row.bus_partition, "offset": row.bus_offset}


async def post(
    conn: AsyncConnection, book: Book, bodies: Sequence[EntryBody], fx: Effects
) -> list[JournalEntry]:
    entries = await journal_store.append(conn, book.contract_id, bodies)
    for entry in entries:
        if entry.period not in book.closed:
            fx.touched.add((book.contract_id, entry.period))
        fx.out.append(
            event_message(
                JournalEntryPosted(entry=entry),
                book.contract_id,
                entry.posted,
                f"entry:{entry.entry_id}",
            )
        )
    return entries


async def close_period(
    conn: AsyncConnection, book: Book, period: str, at: datetime, fx: Effects, cause: dict[str, Any]
) -> str | None:
    """Post the final entries of `period`; return why not, if it cannot be closed."""
    if period in book.closed:
        return None
    computed = await computed_statement(conn, book, period)
    if computed is None:
        return f"no terms in force for {period}"
    inputs = {**await book_inputs(conn, book.contract_id), "cause": cause}
    entries = await post(conn, book, posting.final_bodies(computed, at, inputs), fx)
    posted_into = await journal_store.entries(conn, book.contract_id, period)
    adjustments = [e for e in posted_into if e.kind == posting.ADJUSTMENT]
    final = posting.compose(computed, adjustments, status="final", entries=[*entries, *adjustments])
    terms = book.terms_for(period)
    document = signing.sign_final(
        {
            **final.model_dump(mode="json"),
            "inputs": inputs,
            "closed_at": posting.timestamp(at),
            "parties": {"provider": terms[0].provider, "customer": terms[0].customer}
            if terms
            else None,
        }
    )
    await journal_store.record_close(conn, book.contract_id, period, at, inputs, document)
    book.closed.add(period)
    fx.out.append(
        event_message(
            StatementFinalized(statement=document), book.contract_id, at, f"final:{period}"
        )
    )
    return None


async def correct_late(
    conn: AsyncConnection,
    book: Book,
    period: str,
    late: Sequence[store.MeasurementRow],
    recorded_at: Sequence[datetime],
    fx: Effects,
) -> None:
    """Post adjustments for late measurements of a closed period, one event at a time in bus
    order; a correction is posted each time the money changes (a tier is crossed, or enough
    data arrives for the KPI's `no_data` rule to stop deciding)."""
    found = book.terms_for(period)
    if found is None:
        return
    terms, version = found
    late_ids = {row.event_id for row in late}
    earlier = [
        r
        for r in await store.period_measurements(conn, book.contract_id, period)
        if r.event_id not in late_ids
    ]
    states = PeriodStates(terms)
    for row in earlier:
        states.add(row.kpi, row.event_id, row.number, row.party)
    posted = posting.effective_amounts(await journal_store.entries(conn, book.contract_id), period)
    rated = ratings_of(await store.period_ratings(conn, book.contract_id, period))
    base_inputs = await book_inputs(conn, book.contract_id)
    final = await journal_store.final_statement(conn, book.contract_id, period)
    assert final is not None, f"{period} is closed"
    cut = final.get("inputs", {}).get("slapay.measurements", {})
    # A correction names every late event of the period so far: deterministic, whatever
    # the batch boundaries were.
    pending = [r.event_id for r in earlier if _after(r, cut)]
    for row, at in zip(late, recorded_at, strict=True):
        kpi = terms.kpi(row.kpi)
        pending.append(row.event_id)
        if kpi is None:
            continue
        state = states.counted[kpi.name]
        before = kpi_credit(kpi, state).percent
        states.add(kpi.name, row.event_id, row.number, row.party)
        if kpi_credit(kpi, state).percent == before:
            continue
        recomputed = statement_from_states(terms, period, states, rated, terms_version=version)
        into = periods.first_open_after(period, set(book.closed))
        inputs = {
            **base_inputs,
            "slapay.measurements": {str(row.bus_partition): {"offset": row.bus_offset}},
            "cause": cause_of("slapay.measurements", row),
        }
        bodies = posting.correction_bodies(recomputed, posted, into, at, pending, inputs)
        for body in bodies:
            key = str(body.corrects_line_id)
            posted[key] = posted.get(key, Decimal(0)) + body.amount
        await post(conn, book, bodies, fx)


def _after(row: store.MeasurementRow, cut: dict[str, Any]) -> bool:
    return row.bus_offset > cut.get(str(row.bus_partition), {}).get("offset", -1)


async def resolve_dispute(
    conn: AsyncConnection,
    book: Book,
    dispute: dict[str, Any],
    resolution: dict[str, Any],
    at: datetime,
    fx: Effects,
    cause: dict[str, Any],
) -> None:
    """Record the decision; an accepted dispute with an amount posts an adjustment."""
    settled = {**dispute, "status": resolution["decision"], "resolution": resolution}
    await journal_store.update_dispute(conn, settled)
    amount = Decimal(str(resolution.get("amount") or 0))
    if resolution["decision"] != "accepted" or amount == 0 or not book.versions:
        return
    into = periods.first_open_after(dispute["period"], set(book.closed))
    inputs = {**await book_inputs(conn, book.contract_id), "cause": cause}
    body = posting.dispute_body(
        book.contract_id, into, book.versions[-1].currency, settled, amount, at, inputs
    )
    await post(conn, book, [body], fx)


async def correct_late_reviews(
    conn: AsyncConnection,
    book: Book,
    period: str,
    late: Sequence[store.RatingRow],
    recorded_at: Sequence[datetime],
    fx: Effects,
) -> None:
    """Post adjustments for late ratings of a closed period, one at a time in bus order."""
    found = book.terms_for(period)
    if found is None or found[0].reviews is None:
        return
    terms, version = found
    late_ids = {row.event_id for row in late}
    states = PeriodStates(terms)
    for m in await store.period_measurements(conn, book.contract_id, period):
        states.add(m.kpi, m.event_id, m.number, m.party)
    rows = [
        r
        for r in await store.period_ratings(conn, book.contract_id, period)
        if r.event_id not in late_ids
    ]
    posted = posting.effective_amounts(await journal_store.entries(conn, book.contract_id), period)
    base_inputs = await book_inputs(conn, book.contract_id)
    for row, at in zip(late, recorded_at, strict=True):
        rows.append(row)
        recomputed = statement_from_states(
            terms, period, states, ratings_of(rows), terms_version=version
        )
        into = periods.first_open_after(period, set(book.closed))
        inputs = {
            **base_inputs,
            "slapay.reviews": {str(row.bus_partition): {"offset": row.bus_offset}},
            "cause": cause_of("slapay.reviews", row),
        }
        bodies = posting.correction_bodies(recomputed, posted, into, at, [row.event_id], inputs)
        for body in bodies:
            key = str(body.corrects_line_id)
            posted[key] = posted.get(key, Decimal(0)) + body.amount
        await post(conn, book, bodies, fx)
