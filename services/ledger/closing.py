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

from services.ledger import figures, journal_store, store, ticket_view
from services.ledger.book import (
    Book,
    event_message,
    ratings_of,
    releases_of,
    statement_of_states,
    tickets_for,
)
from services.ledger.book import inputs as book_inputs
from services.ledger.domain import posting
from shared.bus import Message
from shared.core import periods
from shared.core.agents import counts
from shared.core.aggregates import KpiState
from shared.core.journal import EntryBody, JournalEntry
from shared.core.payment import Statement, kpi_credit, reviews_line
from shared.core.terms import Terms
from shared.core.ticket_kpis import ticket_states
from shared.events import JournalEntryPosted, StatementFinalized
from shared.signing import Keyring


@dataclass
class Effects:
    """What a batch produces beyond its rows: messages for the outbox, periods to refresh;
    and the keyring final statements are signed with (None: unsigned)."""

    keyring: Keyring | None
    out: list[tuple[str, Message]] = field(default_factory=list)
    touched: set[tuple[str, str]] = field(default_factory=set)


def cause_of(
    topic: str, row: store.MeasurementRow | store.RatingRow | store.ReleaseRow
) -> dict[str, Any]:
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
    found = book.terms_for(period)
    if found is None:
        return f"no terms in force for {period}"
    terms = found[0]
    async with figures.read(conn, terms, book.contract_id, period) as read:
        computed = await statement_of_states(conn, book, period, read.period)
    await store.keep_tallies(conn, book.contract_id, period, read.tallies)
    inputs = {**await book_inputs(conn, book.contract_id), "cause": cause}
    entries = await post(conn, book, posting.final_bodies(computed, at, inputs), fx)
    posted_into = await journal_store.entries(conn, book.contract_id, period)
    adjustments = [e for e in posted_into if e.kind == posting.ADJUSTMENT]
    final = posting.compose(computed, adjustments, status="final", entries=[*entries, *adjustments])
    document = _signed(
        fx.keyring,
        {
            **final.model_dump(mode="json"),
            "inputs": inputs,
            "closed_at": posting.timestamp(at),
            "parties": {"provider": terms.provider, "customer": terms.customer},
        },
    )
    await journal_store.record_close(conn, book.contract_id, period, at, inputs, document)
    breached = ticket_view.breaches(await ticket_view.period_tickets(conn, book, period, None))
    book.closed.add(period)
    finalized = StatementFinalized(statement=document, ticket_breaches=breached)
    fx.out.append(event_message(finalized, book.contract_id, at, f"final:{period}"))
    return None


def _signed(keyring: Keyring | None, statement: dict[str, Any]) -> dict[str, Any]:
    return statement if keyring is None else keyring.sign(statement)


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
    data arrives for the KPI's `no_data` rule to stop deciding).

    Whether a tier changes is read from the period's tallies, so a late event that changes
    no money costs the same in a period of ten measurements or of millions; only a change
    reads the period to post its correction."""
    found = book.terms_for(period)
    if found is None:
        return
    terms, _ = found
    kept = await store.tallies(conn, book.contract_id, period)
    late_ids = {row.event_id for row in late}
    if set(kept) != {kpi.name for kpi in terms.kpis}:  # closed before tallies were kept
        async with figures.read(conn, terms, book.contract_id, period, skip=late_ids) as read:
            kept = read.tallies
    counted: list[store.MeasurementRow] = []
    for row, at in zip(late, recorded_at, strict=True):
        counted.append(row)
        kpi = terms.kpi(row.kpi)
        if kpi is None or kpi.ticket_metric is not None or not counts(kpi.sources, row.party):
            continue
        tally = kept[kpi.name]
        before = tally.percent(kpi)
        tally.add(row.number)
        if tally.percent(kpi) != before:
            await _post_correction(conn, book, period, late_ids, counted, at, fx)
    await store.keep_tallies(conn, book.contract_id, period, kept)


async def _post_correction(
    conn: AsyncConnection,
    book: Book,
    period: str,
    late_ids: set[str],
    counted: Sequence[store.MeasurementRow],
    at: datetime,
    fx: Effects,
) -> None:
    """Recompute the period with the late events `counted` so far and post what changed.
    The correction names every late event of the period so far: deterministic, whatever
    the batch boundaries were."""
    found = book.terms_for(period)
    assert found is not None
    terms, _ = found
    counted_ids = {r.event_id for r in counted}
    not_yet = late_ids - counted_ids
    async with figures.read(conn, terms, book.contract_id, period, skip=not_yet) as read:
        recomputed = await statement_of_states(conn, book, period, read.period)
    final = await journal_store.final_statement(conn, book.contract_id, period)
    assert final is not None, f"{period} is closed"
    cut = final.get("inputs", {}).get("slapay.measurements", {})
    after = await store.period_measurements_after(conn, book.contract_id, period, cut)
    pending = [r.event_id for r in after if r.event_id not in late_ids]
    pending += [r.event_id for r in counted]
    row = counted[-1]
    inputs = {
        **await book_inputs(conn, book.contract_id),
        "slapay.measurements": {str(row.bus_partition): {"offset": row.bus_offset}},
        "cause": cause_of("slapay.measurements", row),
    }
    posted = posting.effective_amounts(await journal_store.entries(conn, book.contract_id), period)
    into = periods.first_open_after(period, set(book.closed))
    await post(
        conn, book, posting.correction_bodies(recomputed, posted, into, at, pending, inputs), fx
    )


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
    late: Sequence[store.RatingRow | store.ReleaseRow],
    recorded_at: Sequence[datetime],
    fx: Effects,
) -> None:
    """Post adjustments for late ratings and releases of a closed period, one at a time in
    bus order (a release pays what the held review line would have).

    A review changes only the review line, which reads of the KPIs only whether any of them
    earns a credit: the period's tallies say so (kept up to date by every late measurement),
    so a late review never reads the period's measurements."""
    found = book.terms_for(period)
    if found is None or found[0].reviews is None:
        return
    terms, version = found
    late_ids = {row.event_id for row in late}
    rows = [
        r
        for r in await store.period_ratings(conn, book.contract_id, period)
        if r.event_id not in late_ids
    ]
    releases = [
        r
        for r in await store.period_releases(conn, book.contract_id, period)
        if r.event_id not in late_ids
    ]
    posted = posting.effective_amounts(await journal_store.entries(conn, book.contract_id), period)
    base_inputs = await book_inputs(conn, book.contract_id)
    breached = await _sla_breached(conn, book, terms, period)
    for row, at in zip(late, recorded_at, strict=True):
        if isinstance(row, store.ReleaseRow):
            releases.append(row)
        else:
            rows.append(row)
        line = reviews_line(terms, period, ratings_of(rows), breached, releases_of(releases))
        part = Statement(
            contract_id=book.contract_id,
            period=period,
            terms_version=version,
            currency=terms.currency,
            total=line.amount,
            lines=(line,),
        )  # the statement's review part: no other line can change
        into = periods.first_open_after(period, set(book.closed))
        inputs = {
            **base_inputs,
            "slapay.reviews": {str(row.bus_partition): {"offset": row.bus_offset}},
            "cause": cause_of("slapay.reviews", row),
        }
        now = {line.line_id: posted.get(line.line_id, Decimal(0))}
        bodies = posting.correction_bodies(part, now, into, at, [row.event_id], inputs)
        for body in bodies:
            key = str(body.corrects_line_id)
            posted[key] = posted.get(key, Decimal(0)) + body.amount
        await post(conn, book, bodies, fx)


async def _sla_breached(conn: AsyncConnection, book: Book, terms: Terms, period: str) -> bool:
    """Whether any KPI of the closed period earns a credit: its tally says so for a measured
    KPI, its tickets for a ticket KPI."""
    kept = await store.tallies(conn, book.contract_id, period)
    if set(kept) != {kpi.name for kpi in terms.kpis}:  # closed before tallies were kept
        async with figures.read(conn, terms, book.contract_id, period) as read:
            kept = read.tallies
    tickets = await tickets_for(conn, terms, book.contract_id, period)
    ticketed = ticket_states(terms, period, tickets)
    return any(
        (
            kpi_credit(kpi, ticketed.get(kpi.name, KpiState())).percent
            if kpi.ticket_metric
            else kept[kpi.name].percent(kpi)
        )
        > 0
        for kpi in terms.kpis
    )
