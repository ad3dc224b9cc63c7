"""The ticket events the ledger folded, one table for every contract (docs/tickets.md).

A ticket's duration depends on all its events, so a period's ticket KPIs are computed from
the stored events rather than folded incrementally; a period reads only the events before
its end (`shared/core/ticket_kpis.py`). The table shares the ledger's metadata, so it is
created with the rest of the ledger's schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    CompoundSelect,
    FromClause,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    func,
    select,
    union,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.store import metadata, positions
from shared import db
from shared.core.ticket_kpis import TicketRecord
from shared.core.tickets import Priority
from shared.db import UtcDateTime
from shared.events import TOPIC_TICKETS

TOPIC = TOPIC_TICKETS

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("ticket_id", String(128), nullable=False),
    Column("type", String(16), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("priority", String(2), nullable=True),
    Column("bus_partition", Integer, nullable=False),
    Column("bus_offset", BigInteger, nullable=False),
    Index("ticket_events_by_contract", "contract_id", "at"),
)


@dataclass(frozen=True, slots=True)
class TicketRow:
    """A row of `ticket_events`; `period` is the period of `at` in the contract's zone."""

    event_id: str
    contract_id: str
    period: str
    ticket_id: str
    type: str
    at: datetime
    priority: str | None
    bus_partition: int
    bus_offset: int

    def record(self) -> TicketRecord:
        priority = cast("Priority | None", self.priority)  # stored from a validated event
        return TicketRecord(self.event_id, self.ticket_id, self.type, self.at, priority)


async def insert_new(conn: AsyncConnection, rows: Sequence[TicketRow]) -> list[TicketRow]:
    """Insert, skipping event ids already applied; return only the rows that were new."""
    new = []
    for row in rows:
        statement = (
            db.upsert(conn, ticket_events)
            .values(**{name: getattr(row, name) for name in TicketRow.__slots__})
            .on_conflict_do_nothing()
        )
        if (await conn.execute(statement)).rowcount:
            new.append(row)
    return new


async def before(
    conn: AsyncConnection,
    contract_id: str,
    end: datetime,
    upto_offset: int | None = None,
    start: datetime | None = None,
) -> list[TicketRow]:
    """The contract's ticket events before instant `end` (at or before bus offset
    `upto_offset`, if given), in bus order. With `start`, only those of the tickets that
    can count in [start, end): with an event in it, or not resolved before it (a ticket
    resolved as many times more than reopened stopped both clocks before `start`)."""
    t = ticket_events.c
    condition = _rows(ticket_events, contract_id, end, upto_offset)
    if start is not None:
        condition = and_(
            condition, t.ticket_id.in_(_may_count(contract_id, end, upto_offset, start))
        )
    result = await conn.execute(
        select(ticket_events).where(condition).order_by(t.bus_partition, t.bus_offset)
    )
    return [TicketRow(**row._mapping) for row in result]


def _rows(
    table: FromClause, contract_id: str, end: datetime, upto_offset: int | None
) -> ColumnElement[bool]:
    t = table.c
    condition = and_(t.contract_id == contract_id, t.at < end)
    return condition if upto_offset is None else and_(condition, t.bus_offset <= upto_offset)


def _may_count(
    contract_id: str, end: datetime, upto_offset: int | None, start: datetime
) -> CompoundSelect:
    """The ids of the tickets (among the rows `_rows` selects) that may count from `start`
    on: an event at or after it, or not left resolved before it. Read from an alias, so the
    subquery is never correlated with the outer one."""
    earlier = ticket_events.alias("earlier")
    t = earlier.c
    mine = _rows(earlier, contract_id, end, upto_offset)
    resolved = func.sum(case((t.type == "resolved", 1), else_=0))
    reopened = func.sum(case((t.type == "reopened", 1), else_=0))
    running = (
        select(t.ticket_id)
        .where(and_(mine, t.at < start))
        .group_by(t.ticket_id)
        .having(resolved <= reopened)
    )
    return union(running, select(t.ticket_id).where(and_(mine, t.at >= start)))


async def ticket_positions(conn: AsyncConnection, contract_id: str) -> dict[str, dict[str, int]]:
    """How far the contract's ticket events were applied: the cut a posting records."""
    return await positions(conn, contract_id, ticket_events)
