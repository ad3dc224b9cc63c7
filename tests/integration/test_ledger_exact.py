"""The ledger keeps measurements as the decimals their JSON spells, on SQLite and on
Postgres: stored and read back exactly, aggregated exactly (no overflow at any double's
magnitude), and late events into a closed period post an adjustment only when the exact
money changes, never from float noise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store, store
from services.ledger.fold.apply import apply_delivered
from shared import db
from shared.bus import Record
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_MEASUREMENTS,
    Envelope,
    MeasurementRecorded,
    PeriodCloseRequested,
    TermsAgreed,
    make_event,
)
from shared.measured import decode_measurements
from tests import infra

pytestmark = pytest.mark.integration
CONTRACT = "exact-co"
SEPTEMBER = datetime(2026, 9, 15, tzinfo=UTC)
OCTOBER = datetime(2026, 10, 2, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    admin, name = "", ""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        url, name = await infra.create_database(admin)
    engine = db.create_engine(url)
    await db.create_schema(engine, store.metadata)
    try:
        yield engine
    finally:
        await engine.dispose()
        if name:
            await infra.drop_database(admin, name)


class Bus:
    """Records as the ledger's consumer would fetch them, numbered in bus order."""

    def __init__(self) -> None:
        self.offset = 0

    def record(self, topic: str, event: Envelope, raw: bytes | None = None) -> Record:
        self.offset += 1
        headers = {"type": event.type}
        value = raw if raw is not None else event.to_json()
        return Record(topic, 0, self.offset, CONTRACT, value, headers)

    def measurement(self, n: int, number: str, at: datetime, recorded: datetime) -> Record:
        """A measurement whose JSON `data.value` is `number`, written exactly so."""
        event = make_event(
            MeasurementRecorded(kpi="k", value=Decimal(1)),
            contract_id=CONTRACT,
            source="agent:test",
            producer_id=f"m-{n}",
            occurred_at=at,
            recorded_at=recorded,
        )
        body = orjson.loads(event.to_json())
        raw = orjson.dumps(body).replace(b'"value":1.0', b'"value":' + number.encode())
        assert number.encode() in raw
        return self.record(TOPIC_MEASUREMENTS, event, raw)


async def apply(engine: AsyncEngine, *records: Record) -> None:
    decoded = decode_measurements(records)
    assert decoded.failures == []
    await apply_delivered(engine, decoded.delivered, keyring=None)


def sum_terms(breach: float) -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "provider": "P",
        "customer": "C",
        "currency": "EUR",
        "base_fee": "1000.00",
        "effective_from": "2026-09",
        "kpis": [
            {
                "name": "k",
                "aggregation": "sum",
                "objective": "<=",
                "target": breach,
                "credits": [{"breach": breach, "percent": 10}],
            }
        ],
    }


def agreed(bus: Bus, document: dict[str, Any]) -> Record:
    event = make_event(
        TermsAgreed(version=1, terms=document),
        contract_id=CONTRACT,
        source="admin:test",
        recorded_at=SEPTEMBER,
    )
    return bus.record(TOPIC_CONTRACTS, event)


def close(bus: Bus, period: str) -> Record:
    event = make_event(
        PeriodCloseRequested(period=period, requested_by="test"),
        contract_id=CONTRACT,
        source="admin:test",
        recorded_at=OCTOBER,
    )
    return bus.record(TOPIC_CONTRACTS, event)


async def adjustments(engine: AsyncEngine) -> list[str]:
    entries = [e.document() for e in await journal_store.entries(engine, CONTRACT)]
    return [e["amount"] for e in entries if e["kind"] == "adjustment"]


async def test_late_events_adjust_only_when_the_exact_money_changes(engine: AsyncEngine) -> None:
    bus = Bus()
    await apply(
        engine, agreed(bus, sum_terms(0.3)), bus.measurement(1, "0.1", SEPTEMBER, SEPTEMBER)
    )
    await apply(engine, close(bus, "2026-09"))
    async with engine.connect() as conn:
        final = await journal_store.final_statement(conn, CONTRACT, "2026-09")
    assert final is not None and final["total"] == "1000.00"
    # late: 0.1 + 0.2 is 0.3, on the breach, not past it (in floats, 0.30000000000000004)
    await apply(engine, bus.measurement(2, "0.2", SEPTEMBER, OCTOBER))
    assert await adjustments(engine) == []
    # one step past the breach: now the 10% tier applies, posted into October
    await apply(engine, bus.measurement(3, "0.000000000000000001", SEPTEMBER, OCTOBER))
    assert await adjustments(engine) == ["-100.00"]


@pytest.mark.parametrize(
    "numbers",
    [
        ["0.1", "0.2"],
        ["123456789012345.123456789012345678", "-0.000000000000000001"],
        ["1.7e308", "1.7e308"],  # issue 19: `kpi_aggregates.total` overflowed as a double
        ["5e-324", "1e-1074", "0.30000000000000004"],
    ],
)
async def test_values_and_aggregates_are_kept_exactly(
    engine: AsyncEngine, numbers: list[str]
) -> None:
    bus = Bus()
    await apply(engine, agreed(bus, sum_terms(1e308)))
    half = len(numbers) // 2  # two batches: the aggregates add up across them too
    for batch in (numbers[:half], numbers[half:]):
        await apply(
            engine,
            *(bus.measurement(bus.offset, n, SEPTEMBER, SEPTEMBER) for n in batch),
        )
    async with engine.connect() as conn:
        stored = await store.period_measurements(conn, CONTRACT, "2026-09")
    values = [Decimal(n) for n in numbers]
    assert [r.value for r in stored] == numbers  # the very digits the JSON spelled
    assert [r.number for r in stored] == values
    (aggregate,) = await store.aggregates(engine, CONTRACT, "2026-09")
    assert aggregate["count"] == len(numbers)
    assert Fraction(aggregate["total"]) == sum(map(Fraction, values), Fraction(0))
    assert (aggregate["minimum"], aggregate["maximum"]) == (min(values), max(values))
