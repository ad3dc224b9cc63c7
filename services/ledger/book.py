"""A contract as the ledger reads it inside a transaction: terms, closes, computed statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger import journal_store, store
from shared.bus import Message
from shared.events import EventData, make_event
from shared.payment import Observation, Statement, compute_statement
from shared.publishing import to_message
from shared.terms import Terms, terms_in_force, version_in_force


@dataclass
class Book:
    contract_id: str
    versions: list[Terms]
    agreed_at: list[datetime]
    closed: dict[str, dict[str, Any]]

    def terms_for(self, period: str) -> tuple[Terms, int] | None:
        terms = terms_in_force(self.versions, period)
        version = version_in_force(self.versions, period)
        return None if terms is None or version is None else (terms, version)

    @property
    def timezone(self) -> str:
        return self.versions[-1].timezone if self.versions else "UTC"


async def open_book(conn: AsyncConnection, contract_id: str) -> Book:
    documents = (await store.terms_versions(conn, [contract_id])).get(contract_id, [])
    return Book(
        contract_id=contract_id,
        versions=[Terms.model_validate(d) for d in documents],
        agreed_at=await store.agreed_at(conn, contract_id),
        closed=await journal_store.closed(conn, contract_id),
    )


async def computed_statement(conn: AsyncConnection, book: Book, period: str) -> Statement | None:
    """The period's lines from every measurement folded so far (None without terms)."""
    found = book.terms_for(period)
    if found is None:
        return None
    terms, version = found
    rows = await store.period_measurements(conn, book.contract_id, period)
    observations = [Observation(r.event_id, r.kpi, r.value, r.occurred_at) for r in rows]
    return compute_statement(terms, period, observations, [], terms_version=version)


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
    return data.TOPIC, to_message(event, {})
