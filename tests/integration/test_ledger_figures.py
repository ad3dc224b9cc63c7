"""A close reads its period's figures a chunk at a time (`services/ledger/figures.py`) and
must bill exactly what `compute_statement` bills from the same measurements held in memory:
percentiles among decimals that share a double, ids ordered by code point on Postgres as in
Python, measurements kept aside by source, late events left out, and the credit cap's
digest over a union of KPIs, on SQLite and on Postgres."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import figures, store
from shared import db
from shared.core.payment import Observation, compute_statement, statement_from_states
from shared.core.tally import Tally
from shared.core.terms import Terms
from tests import infra

pytestmark = pytest.mark.integration
ICU_ENGLISH = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
CONTRACT = "figures-co"
PERIOD = "2026-09"
START = datetime(2026, 9, 1, tzinfo=UTC)

TIED = [
    "0.1",
    "0.1000000000000000055511151231257827021181583404541015625",  # 0.1's own double
    "0.10000000000000000001",
    "300",
    "300.00000000000000000001",
    "299.99999999999999999999",
    "1e400",  # no double: both are infinite as doubles, and still differ
    "2e400",
    "-1e400",
]
"""Values that share a double with another: only exact comparison orders them."""


def terms() -> Terms:
    return Terms.model_validate(
        {
            "contract_id": CONTRACT,
            "provider": "P",
            "customer": "C",
            "currency": "EUR",
            "base_fee": "10000.00",
            "effective_from": PERIOD,
            "kpis": [
                kpi("availability", "mean", ">=", "0.99", sources=["customer"]),
                kpi("latency_ms", "p95", "<=", "300"),
                kpi("median_ms", "p50", "<=", "0.1"),
                kpi("fastest_ms", "min", "<=", "0.1"),
                kpi("within_day", "share_within", ">=", "0.9", threshold=Decimal(300)),
            ],
            "max_credit_percent": 12,  # two breached KPIs pass it
        }
    )


def kpi(name: str, aggregation: str, objective: str, breach: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "aggregation": aggregation,
        "objective": objective,
        "target": Decimal(breach),
        "credits": [{"breach": Decimal(breach), "percent": 10}],
        **extra,
    }


def rows(seed: int, count: int) -> list[dict[str, Any]]:
    """Measurements of the period (and a few of another period, contract or KPI), with ids
    whose order differs between code points and a language's collation."""
    rng = random.Random(seed)
    alphabet = "aAbB9_-zZ"
    found: dict[str, dict[str, Any]] = {}
    names = ["availability", "latency_ms", "median_ms", "fastest_ms", "within_day", "unknown"]
    while len(found) < count:
        event_id = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        name = rng.choice(names)
        value = (
            rng.choice(["0", "1", "1", "1"])
            if name == "availability"
            else rng.choice(TIED)
            if rng.random() < 0.7
            else str(Decimal(rng.randint(-5000, 5000)) / 10)
        )
        found.setdefault(
            event_id,
            {
                "event_id": event_id,
                "contract_id": CONTRACT if rng.random() < 0.95 else "other-co",
                "period": PERIOD if rng.random() < 0.95 else "2026-10",
                "kpi": name,
                "value": value,
                "occurred_at": START + timedelta(minutes=len(found)),
                "bus_partition": 0,
                "bus_offset": len(found),
                "party": rng.choice(["customer", "provider", None]),
            },
        )
    return list(found.values())


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    admin, name = "", ""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    else:
        admin = request.getfixturevalue("postgres_admin")
        # a language's collation, as many servers have: it orders "a" before "B"
        url, name = await infra.create_database(admin, ICU_ENGLISH)
    engine = db.create_engine(url)
    await db.create_schema(engine, store.metadata)
    try:
        yield engine
    finally:
        await engine.dispose()
        if name:
            await infra.drop_database(admin, name)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_figures_bill_what_the_measurements_held_in_memory_bill(
    engine: AsyncEngine, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "SPOOL_IN_MEMORY", 256)  # the ids go to disk too
    measured = rows(seed, 3000)
    skip = {r["event_id"] for r in random.Random(seed).sample(measured, 100)}
    async with engine.begin() as conn:
        await conn.execute(store.measurements.insert(), measured)
    kept = [
        r
        for r in measured
        if r["contract_id"] == CONTRACT and r["period"] == PERIOD and r["event_id"] not in skip
    ]
    observations = [
        Observation(r["event_id"], r["kpi"], Decimal(r["value"]), r["occurred_at"], r["party"])
        for r in kept
    ]
    expected = compute_statement(terms(), PERIOD, observations, [])

    async with (
        engine.connect() as conn,
        figures.read(conn, terms(), CONTRACT, PERIOD, skip) as read,
    ):
        got = statement_from_states(terms(), PERIOD, read.period, [])
        tallies = read.tallies

    assert got == expected
    assert any(line.kind == "credit_cap" for line in got.lines)  # a union was digested
    for k in terms().kpis:
        counted = [
            Decimal(r["value"])
            for r in kept
            if r["kpi"] == k.name and (not k.sources or r["party"] in k.sources)
        ]
        assert tallies[k.name] == Tally.of(k, counted)


async def test_a_percentile_among_tied_doubles_is_the_exact_decimal(engine: AsyncEngine) -> None:
    """Ninety-five values whose doubles are all 0.1: p95 is the 95th smallest decimal."""
    values = [Decimal("0.1") + Decimal(n) * Decimal("1e-30") for n in range(95)]
    values += [Decimal(1000 + n) for n in range(5)]
    random.Random(7).shuffle(values)
    measured = [
        {
            "event_id": f"m{n:03}",
            "contract_id": CONTRACT,
            "period": PERIOD,
            "kpi": "latency_ms",
            "value": str(v),
            "occurred_at": START,
            "bus_partition": 0,
            "bus_offset": n,
            "party": None,
        }
        for n, v in enumerate(values)
    ]
    async with engine.begin() as conn:
        await conn.execute(store.measurements.insert(), measured)
    async with engine.connect() as conn, figures.read(conn, terms(), CONTRACT, PERIOD) as read:
        value = read.period.counted["latency_ms"].value("p95")
    assert value == Decimal("0.1") + 94 * Decimal("1e-30")
