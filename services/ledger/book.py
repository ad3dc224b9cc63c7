"""A contract as the ledger reads it inside a transaction: terms, closes, computed statements."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import figures, journal_store, store, ticket_store
from shared import jsonutil
from shared.bus import Message
from shared.core.payment import (
    PeriodFigures,
    PeriodStates,
    Rating,
    Release,
    Statement,
    TicketRecord,
    statement_from_states,
)
from shared.core.periods import period_bounds
from shared.core.terms import Terms, terms_in_force, version_in_force
from shared.events import EventData, make_event
from shared.publishing import to_message
from shared.telemetry import inject_headers


@dataclass
class Book:
    contract_id: str
    versions: list[Terms]
    agreed_at: list[datetime]
    closed: set[str]
    """Closed periods (`journal_store.final_statement` reads one's statement)."""

    def terms_for(self, period: str) -> tuple[Terms, int] | None:
        terms = terms_in_force(self.versions, period)
        version = version_in_force(self.versions, period)
        return None if terms is None or version is None else (terms, version)

    @property
    def timezone(self) -> str:
        return self.versions[-1].timezone if self.versions else "UTC"


async def open_book(conn: AsyncConnection, contract_id: str) -> Book:
    return (await open_books(conn, [contract_id]))[contract_id]


async def open_books(conn: AsyncConnection, contract_ids: Iterable[str]) -> dict[str, Book]:
    """Each contract's book, read with one query per table: a batch of events spans many
    contracts, and a query per contract and table was a fixed cost of every batch."""
    ids = sorted(set(contract_ids))
    documents = await store.terms_texts(conn, ids)
    agreed = await store.agreed_at(conn, ids)
    closed = await journal_store.closed(conn, ids)
    return {
        c: Book(
            contract_id=c,
            versions=[_terms(text) for text in documents.get(c, [])],
            agreed_at=agreed.get(c, []),
            closed=closed.get(c, set()),
        )
        for c in ids
    }


@functools.lru_cache(maxsize=4096)
def _terms(text: str) -> Terms:
    """A stored terms document, validated (about 0.1 ms each; every batch opens the books of
    its contracts). `Terms` is frozen, so books share one."""
    return Terms.model_validate(jsonutil.loads(text))


class RunningStates:
    """The ledger's running per-(contract, period, KPI) state: each provisional snapshot reads
    only the measurements folded since the last one, so a period of millions stays cheap.
    Per contract, the bus offset of its (one) partition grows with every applied event."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, int], tuple[PeriodStates, int]] = {}

    async def states(
        self, conn: AsyncConnection, terms: Terms, contract_id: str, period: str, version: int
    ) -> PeriodStates:
        key = (contract_id, period, version)
        states, seen = self._states.get(key) or (PeriodStates(terms), -1)
        for row in await store.period_measurements(conn, contract_id, period, after=seen):
            states.add(row.kpi, row.event_id, row.number, row.party)
            seen = max(seen, row.bus_offset)
        self._states[key] = (states, seen)
        return states

    def forget(self, contract_id: str, period: str) -> None:
        for key in [k for k in self._states if k[:2] == (contract_id, period)]:
            del self._states[key]


async def running_statement(
    conn: AsyncConnection,
    book: Book,
    period: str,
    running: RunningStates,
    as_of: datetime | None = None,
) -> Statement | None:
    """`computed_statement` from the running state: the same numbers, read incrementally."""
    found = book.terms_for(period)
    if found is None:
        return None
    terms, version = found
    states = await running.states(conn, terms, book.contract_id, period, version)
    return await statement_of_states(conn, book, period, states, as_of)


async def statement_of_states(
    conn: AsyncConnection,
    book: Book,
    period: str,
    states: PeriodStates | PeriodFigures,
    as_of: datetime | None = None,
) -> Statement:
    """The period's statement from measurement states the caller holds, with the period's
    reviews, releases and tickets as stored; the period must have terms."""
    found = book.terms_for(period)
    assert found is not None, f"no terms in force for {period}"
    terms, version = found
    rated, releases = await review_inputs(conn, book.contract_id, period)
    tickets = await tickets_for(conn, terms, book.contract_id, period)
    return statement_from_states(
        terms,
        period,
        states,
        rated,
        terms_version=version,
        releases=releases,
        tickets=tickets,
        as_of=as_of,
    )


async def computed_statement(
    conn: AsyncConnection, book: Book, period: str, as_of: datetime | None = None
) -> Statement | None:
    """The period's lines from every measurement folded so far, read as figures a chunk at a
    time (None without terms). `as_of`: a snapshot of a running period, whose running
    tickets are measured up to then (docs/tickets.md)."""
    found = book.terms_for(period)
    if found is None:
        return None
    async with figures.read(conn, found[0], book.contract_id, period) as read:
        return await statement_of_states(conn, book, period, read.period, as_of)


async def review_inputs(
    conn: AsyncConnection, contract_id: str, period: str
) -> tuple[list[Rating], list[Release]]:
    """The period's ratings (with their source and flags) and releases, in bus order."""
    rated = ratings_of(await store.period_ratings(conn, contract_id, period))
    return rated, releases_of(await store.period_releases(conn, contract_id, period))


async def tickets_for(
    conn: AsyncConnection,
    terms: Terms,
    contract_id: str,
    period: str,
    upto_offset: int | None = None,
) -> list[TicketRecord]:
    """The ticket events a period's ticket KPIs read: the contract's, before the period's
    end (at or before bus offset `upto_offset`, if given), of the tickets that may count
    in it (the others would change nothing); none without ticket KPIs."""
    if not terms.ticket_kpis:
        return []
    start, end = period_bounds(period, terms.timezone)
    rows = await ticket_store.before(conn, contract_id, end, upto_offset, start)
    return [row.record() for row in rows]


def ratings_of(rows: list[store.RatingRow]) -> list[Rating]:
    return [
        Rating(
            r.event_id,
            r.reviewer,
            r.rating,
            r.occurred_at,
            r.bus_offset,
            source=r.source,
            flags=tuple(jsonutil.loads(r.flags)),
        )
        for r in rows
    ]


def releases_of(rows: list[store.ReleaseRow]) -> list[Release]:
    return [Release(r.event_id, r.period, r.bus_offset) for r in rows]


async def inputs(conn: AsyncConnection, contract_id: str) -> dict[str, Any]:
    """The cut a posting records: how far each input topic had been applied (reviews:
    ratings and releases alike; ticket events only for a contract that has some)."""
    reviews = await store.positions(conn, contract_id, store.ratings)
    for partition, place in (
        await store.positions(conn, contract_id, store.review_releases)
    ).items():
        if place["offset"] > reviews.get(partition, {"offset": -1})["offset"]:
            reviews[partition] = place
    cut = {
        "slapay.measurements": await store.positions(conn, contract_id),
        "slapay.reviews": reviews,
    }
    tickets = await ticket_store.ticket_positions(conn, contract_id)
    return {**cut, ticket_store.TOPIC: tickets} if tickets else cut


def event_message(
    data: EventData, contract_id: str, at: datetime, producer_id: str
) -> tuple[str, Message]:
    """A message for the outbox with a deterministic event id (replays dedupe)."""
    event = make_event(
        data,
        contract_id=contract_id,
        source="ledger",
        occurred_at=at,
        producer_id=producer_id,
        recorded_at=at,
    )
    return data.TOPIC, to_message(event, inject_headers())
