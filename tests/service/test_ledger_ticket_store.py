"""The ledger reads only the tickets that may count in a period, and that changes nothing:
the same ticket KPIs as from every ticket event of the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import store, ticket_store
from shared import db
from shared.core.periods import period_bounds, period_of
from shared.core.terms import Terms
from shared.core.ticket_kpis import ticket_states
from shared.core.tickets import TicketEventIn
from tests.ticket_examples import CONTRACT, JULY, JUNE, ticket_terms

TERMS = Terms.model_validate(ticket_terms("2026-05"))


def event(ticket: str, type_: str, at: str, priority: str | None = "P1") -> dict[str, Any]:
    found = {"contract_id": CONTRACT, "ticket_id": ticket, "type": type_, "at": at}
    return {**found, "priority": priority}


MAY = [
    event("M", "opened", "2026-05-05T09:00:00+02:00"),  # done in May: never read for June
    event("M", "responded", "2026-05-05T09:30:00+02:00"),
    event("M", "resolved", "2026-05-06T12:00:00+02:00"),
    event("N", "opened", "2026-05-28T09:00:00+02:00"),  # still open: read, breached in May
    event("R", "opened", "2026-05-20T09:00:00+02:00"),  # resolved in May, reopened in June
    event("R", "responded", "2026-05-20T09:10:00+02:00"),
    event("R", "resolved", "2026-05-20T10:00:00+02:00"),
    event("R", "reopened", "2026-06-10T09:00:00+02:00"),
    event("R", "resolved", "2026-06-10T11:00:00+02:00"),
]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await db.create_schema(engine, store.metadata)
    items = [TicketEventIn.model_validate(e) for e in [*MAY, *JUNE, *JULY]]
    rows = [
        ticket_store.TicketRow(
            str(item.id()),
            CONTRACT,
            period_of(item.at, "Europe/Berlin"),
            item.ticket_id,
            item.type,
            item.at,
            item.priority,
            0,
            offset,
        )
        for offset, item in enumerate(items)
    ]
    async with engine.begin() as conn:
        assert len(await ticket_store.insert_new(conn, rows)) == len(rows)
        assert await ticket_store.insert_new(conn, rows) == []  # applied once
    yield engine
    await engine.dispose()


@pytest.mark.parametrize("period", ["2026-05", "2026-06", "2026-07"])
async def test_the_tickets_read_for_a_period_give_the_same_kpis(
    engine: AsyncEngine, period: str
) -> None:
    start, end = period_bounds(period, "Europe/Berlin")
    async with engine.connect() as conn:
        every = await ticket_store.before(conn, CONTRACT, end)
        read = await ticket_store.before(conn, CONTRACT, end, start=start)
    assert {r.ticket_id for r in read} <= {r.ticket_id for r in every}
    if period == "2026-06":
        assert {r.ticket_id for r in read} == {"A", "B", "C", "D", "E", "N", "R"}
    full = ticket_states(TERMS, period, [r.record() for r in every])
    bounded = ticket_states(TERMS, period, [r.record() for r in read])
    for kpi, state in full.items():
        assert (state.items(), state.digest()) == (bounded[kpi].items(), bounded[kpi].digest())
    if period == "2026-06":
        assert [t for t, _ in full["p1_resolution"].items()] == ["A", "B", "D", "E", "R"]


async def test_a_cut_reads_only_the_events_up_to_it(engine: AsyncEngine) -> None:
    _, end = period_bounds("2026-06", "Europe/Berlin")
    async with engine.connect() as conn:
        upto = await ticket_store.before(conn, CONTRACT, end, upto_offset=3)
        positions = await ticket_store.ticket_positions(conn, CONTRACT)
    assert [r.bus_offset for r in upto] == [0, 1, 2, 3]
    assert positions == {"0": {"offset": len(MAY + JUNE + JULY) - 1}}
