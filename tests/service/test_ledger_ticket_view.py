"""The ledger's per-ticket view of a ticket KPI, and the breached tickets it publishes with
a statement, on the month worked out by hand in `tests/ticket_examples.py` (fake bus,
SQLite)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import handlers, journal_store, store
from shared import db
from shared.core.terms import Terms
from shared.events import TOPIC_JOURNAL, StatementFinalized
from tests.service.test_ledger_tickets import Feed
from tests.ticket_examples import CONTRACT, JUNE, PERIOD, ticket_terms

MEASURED = {
    "name": "uptime",
    "aggregation": "mean",
    "objective": ">=",
    "target": 99,
    "credits": [{"breach": 99, "percent": 1}],
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await db.create_schema(engine, store.metadata)
    yield engine
    await engine.dispose()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def by_ticket(view: dict[str, Any]) -> dict[str, tuple[str, bool | None, bool]]:
    return {
        t["ticket_id"]: (t["hours"], t["breached"], t["running_past_threshold"])
        for t in view["items"]
    }


async def view(engine: AsyncEngine, kpi: str, now: datetime) -> dict[str, Any]:
    found = await handlers.period_tickets(engine, CONTRACT, PERIOD, kpi, now)
    return found.model_dump(mode="json")


async def finalized(engine: AsyncEngine) -> dict[str, Any]:
    for row in await journal_store.pending(engine):
        event = json.loads(row.value)
        if row.topic == TOPIC_JOURNAL and event["type"] == StatementFinalized.TYPE:
            return dict(event["data"])
    raise AssertionError("no statement.finalized in the outbox")


async def test_each_counted_ticket_with_its_hours_breach_and_spans(engine: AsyncEngine) -> None:
    feed = Feed(engine)
    document = ticket_terms()
    document["kpis"].append(MEASURED)
    await handlers.agree(engine, feed.bus, Terms.model_validate(document), "a", revision=False)
    await feed.fold()
    await feed.tickets(JUNE, recorded_at=at("2026-06-30T23:00:00"))

    running = await view(engine, "p1_response", at("2026-06-30T10:00:00"))
    assert running["as_of"] == "2026-06-30T10:00:00Z"  # open: measured up to now
    assert by_ticket(running) == {
        "A": ("0.5", False, False),
        "B": ("1.5", True, False),
        "D": ("3", True, True),  # 09:00-12:00 Berlin so far, past 1 h
        "E": ("0.75", False, False),
    }
    spans = {t["ticket_id"]: t["spans"] for t in running["items"]}
    assert spans["B"] == [  # Wednesday 17-18, Corpus Christi closed, Friday 09:00-09:30
        {"start": "2026-06-03T15:00:00Z", "end": "2026-06-03T16:00:00Z"},
        {"start": "2026-06-05T07:00:00Z", "end": "2026-06-05T07:30:00Z"},
    ]

    now = at("2026-07-02T00:00:00")
    await handlers.request_close(engine, feed.bus, CONTRACT, PERIOD, "a", now=now)
    await feed.fold()
    final = await finalized(engine)
    lines = {line["kpi"]: line for line in final["statement"]["lines"] if line.get("kpi")}
    closed = await view(engine, "p1_response", now)
    assert closed["as_of"] is None
    assert by_ticket(closed)["D"] == ("9", True, True)  # unanswered all of 30 June
    assert closed["tickets"] == lines["p1_response"]["derivation"]["tickets"] == 4
    assert closed["events_digest"] == lines["p1_response"]["derivation"]["events_digest"]
    resolution = await view(engine, "p2_resolution", now)
    assert (resolution["bound_hours"], by_ticket(resolution)) == ("16", {"C": ("18", True, False)})

    # Published beside the signed statement: the breached tickets, worst first.
    breaches = {b["kpi"]: b for b in final["ticket_breaches"]}
    assert breaches["p1_response"] == {
        "kpi": "p1_response",
        "breached": 2,
        "tickets": [
            {"ticket_id": "D", "hours": "9", "running": True},
            {"ticket_id": "B", "hours": "1.5", "running": False},
        ],
    }
    assert breaches["p2_resolution"]["tickets"] == [
        {"ticket_id": "C", "hours": "18", "running": False}
    ]
    assert breaches["p2_response"] == {"kpi": "p2_response", "breached": 0, "tickets": []}
    assert "ticket_breaches" not in final["statement"]

    # A late answer for D is in the adjustments, not in the final statement's own view.
    answered = {**JUNE[11], "type": "responded", "at": "2026-06-30T09:30:00+02:00"}
    await feed.tickets([answered], recorded_at=at("2026-07-10T12:00:00"))
    assert await view(engine, "p1_response", now) == closed


@pytest.mark.parametrize(
    ("contract", "period", "kpi", "status"),
    [
        ("nobody", PERIOD, "p1_response", 404),
        (CONTRACT, PERIOD, "no_such_kpi", 404),
        (CONTRACT, PERIOD, "uptime", 422),
        (CONTRACT, "2026-05", "p1_response", 409),  # before the terms take effect
    ],
)
async def test_what_the_view_refuses(
    engine: AsyncEngine, contract: str, period: str, kpi: str, status: int
) -> None:
    feed = Feed(engine)
    document = ticket_terms()
    document["kpis"].append(MEASURED)
    await handlers.agree(engine, feed.bus, Terms.model_validate(document), "a", revision=False)
    with pytest.raises(handlers.Refused) as refused:
        await handlers.period_tickets(engine, contract, period, kpi, at("2026-07-01T00:00:00"))
    assert refused.value.status == status
