"""The ledger's fold over ticket events, driven by hand with a fake bus and SQLite: a late
event within the contract's window corrects the closed period, one past it becomes a dead
letter and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.ticket_events import event_json
from services.ledger import handlers, journal_store, store
from services.ledger.fold.apply import apply_delivered
from shared import db
from shared.bus import Message
from shared.core.terms import Terms
from shared.core.tickets import TicketEventIn
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_DEADLETTER,
    TOPIC_TICKETS,
    TicketEventRecorded,
)
from shared.measured import decode_measurements
from tests.fakes import InMemoryBus
from tests.ticket_examples import CONTRACT, JUNE, ticket_terms


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await db.create_schema(engine, store.metadata)
    yield engine
    await engine.dispose()


class Feed:
    """The fake bus and how far the fold has applied each topic."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine, self.bus = engine, InMemoryBus()
        self.applied = {TOPIC_CONTRACTS: 0, TOPIC_TICKETS: 0}

    async def tickets(self, items: list[dict[str, object]], recorded_at: datetime) -> None:
        messages = []
        for raw in items:
            item = TicketEventIn.model_validate(raw)
            value = event_json(item, str(item.id()), "agent:test", recorded_at)
            messages.append(Message(CONTRACT, value, {"type": TicketEventRecorded.TYPE}))
        await self.bus.publish(TOPIC_TICKETS, messages)
        await self.fold()

    async def fold(self) -> None:
        for topic, done in self.applied.items():
            records = self.bus.topics[topic][done:]
            self.applied[topic] += len(records)
            if records:
                delivered = decode_measurements(records).delivered
                await apply_delivered(self.engine, delivered, keyring=None)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_late_ticket_events_are_corrected_or_dead_lettered(engine: AsyncEngine) -> None:
    feed = Feed(engine)
    terms = Terms.model_validate({**ticket_terms(), "late_events_months": 1})
    await handlers.agree(engine, feed.bus, terms, "admin:a", revision=False)
    await feed.fold()
    await feed.tickets(JUNE, recorded_at=at("2026-06-30T23:00:00"))
    await handlers.request_close(
        engine, feed.bus, CONTRACT, "2026-06", "admin:a", now=at("2026-07-02T00:00:00")
    )
    await feed.fold()
    finals = await journal_store.entries(engine, CONTRACT)
    assert {e.line_id.split(":")[-1]: str(e.amount) for e in finals if e.kpi} == {
        "p1_response": "-500.00",
        "p1_resolution": "-500.00",
        "p2_response": "0.00",
        "p2_resolution": "-300.00",
    }

    # D, running at close, was in fact answered in 30 min and solved in 2 h: 3 of 4 P1
    # tickets within each limit, 0.75, still the 5 % tier: no money moves, no adjustment.
    answered = {**JUNE[11], "type": "responded", "at": "2026-06-30T09:30:00+02:00"}
    solved = {**JUNE[11], "type": "resolved", "at": "2026-06-30T11:00:00+02:00"}
    await feed.tickets([answered, solved], recorded_at=at("2026-07-10T12:00:00"))
    assert [
        e for e in await journal_store.entries(engine, CONTRACT) if e.kind == "adjustment"
    ] == []
    # E was solved on 29 June after 3 h, not on 1 July: 4 of 4 within 8 h, no credit.
    e_solved = {**JUNE[12], "type": "resolved", "at": "2026-06-29T12:00:00+02:00"}
    await feed.tickets([e_solved], recorded_at=at("2026-07-11T12:00:00"))
    adjustments = [
        e for e in await journal_store.entries(engine, CONTRACT) if e.kind == "adjustment"
    ]
    assert [(e.corrects_line_id.split(":")[-1], str(e.amount), e.period) for e in adjustments] == [
        ("p1_resolution", "500.00", "2026-07")
    ]
    assert adjustments[0].inputs["cause"]["topic"] == TOPIC_TICKETS

    # Past late_events_months (June is three months before September): a dead letter.
    too_late = {**JUNE[0], "ticket_id": "Z"}
    await feed.tickets([too_late], recorded_at=at("2026-09-01T12:00:00"))
    async with engine.connect() as conn:
        ticket_rows = await conn.execute(store.metadata.tables["ticket_events"].select())
        assert "Z" not in {row.ticket_id for row in ticket_rows}
    letters = [
        json.loads(row.value)
        for row in await journal_store.pending(engine)
        if row.topic == TOPIC_DEADLETTER
    ]
    assert len(letters) == 1 and "late_events_months" in letters[0]["reason"]
    assert len(await journal_store.entries(engine, CONTRACT)) == len(finals) + 1


async def test_an_event_of_an_open_period_corrects_a_later_closed_one(engine: AsyncEngine) -> None:
    """July closed before June: H's opening on 30 June is not late for June, but H's clock
    stops in July (its answer on 1 July), so July is corrected."""
    feed = Feed(engine)
    await handlers.agree(
        engine, feed.bus, Terms.model_validate(ticket_terms()), "a", revision=False
    )
    await feed.fold()
    answer = {**JUNE[11], "ticket_id": "H", "type": "responded", "at": "2026-07-01T09:15:00+02:00"}
    await feed.tickets([*JUNE, answer], recorded_at=at("2026-07-01T08:00:00"))
    now = at("2026-08-02T00:00:00")
    await handlers.request_close(engine, feed.bus, CONTRACT, "2026-07", "a", now=now)
    await feed.fold()
    closed = await journal_store.entries(engine, CONTRACT)
    assert {e.period for e in closed} == {"2026-07"} and sum(e.amount for e in closed) == 10000

    opened = {**answer, "type": "opened", "at": "2026-06-30T17:00:00+02:00", "priority": "P1"}
    await feed.tickets([opened], recorded_at=at("2026-08-05T12:00:00"))
    adjustments = [
        e for e in await journal_store.entries(engine, CONTRACT) if e.kind == "adjustment"
    ]
    assert sorted((e.corrects_line_id.split(":")[-1], str(e.amount)) for e in adjustments) == [
        ("p1_resolution", "-1000.00"),  # H runs past 8 h by July's end
        ("p1_response", "-1000.00"),  # 1.25 h: June 17:00-18:00, July 09:00-09:15
    ]
    assert {(e.corrects_period, e.period) for e in adjustments} == {("2026-07", "2026-08")}
