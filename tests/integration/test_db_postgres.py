"""Postgres engines encode and decode `timestamptz` with `shared.db`'s own codec (asyncpg's
is slow on the fold's COPY): every instant reaches the server as the very instant it names,
by bound parameter and by binary COPY, and comes back as an aware UTC datetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import store
from services.ledger.fold import rows as fold_rows
from shared import db

pytestmark = pytest.mark.integration

INSTANTS = [
    datetime(2026, 10, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),  # Postgres's own epoch: zero
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # just before: negative
    datetime(2000, 1, 1, 4, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # not UTC
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(postgres_url)
    try:
        yield engine
    finally:
        await engine.dispose()


def as_postgres_prints(instant: datetime) -> str:
    """How Postgres prints a UTC timestamptz (`SET TimeZone = 'UTC'`)."""
    utc = instant.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return f"{utc:%Y-%m-%d %H:%M:%S}{fraction}+00".rjust(len("0001-01-01 00:00:00+00"), "0")


@pytest.mark.parametrize("instant", INSTANTS, ids=lambda i: i.isoformat())
async def test_bound_instants_reach_postgres_unchanged(
    engine: AsyncEngine, instant: datetime
) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SET TimeZone = 'UTC'"))
        printed = await conn.scalar(text("SELECT CAST(:v AS timestamptz)::text"), {"v": instant})
        back = await conn.scalar(text("SELECT CAST(:v AS timestamptz)"), {"v": instant})
    assert printed == as_postgres_prints(instant)
    assert back == instant
    assert back.tzinfo is UTC


async def test_instants_from_postgres_are_aware_utc(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT '2026-03-29 01:30:00.5+02'::timestamptz + interval '1 microsecond'")
        )
        infinite = await conn.scalar(text("SELECT 'infinity'::timestamptz"))
        before = await conn.scalar(text("SELECT '-infinity'::timestamptz"))
    assert found == datetime(2026, 3, 28, 23, 30, 0, 500001, tzinfo=UTC)
    assert found.tzinfo is UTC
    assert (infinite, before) == (datetime.max, datetime.min)  # as asyncpg's own codec


async def test_infinities_and_naive_datetimes_as_asyncpg_reads_them(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SET TimeZone = 'UTC'"))
        bound = [
            await conn.scalar(text("SELECT CAST(:v AS timestamptz)::text"), {"v": v})
            for v in (datetime.max, datetime.min)
        ]
    assert bound == ["infinity", "-infinity"]
    naive = datetime(2026, 10, 1, 12, 0)  # local time, as asyncpg takes it
    assert db.timestamptz_to_pg(naive) == db.timestamptz_to_pg(naive.astimezone(UTC))


async def test_copied_instants_read_back(engine: AsyncEngine) -> None:
    await db.create_schema(engine, store.metadata)
    rows = [
        store.MeasurementRow(f"e-{i}", "c", "2026-10", "latency", "1.0", instant, 0, i)
        for i, instant in enumerate(INSTANTS)
    ]
    async with engine.begin() as conn:
        assert await fold_rows.insert_new_measurements(conn, rows) == rows  # the COPY path
        await conn.execute(text("SET LOCAL TimeZone = 'UTC'"))
        printed = (
            await conn.execute(
                text("SELECT occurred_at::text FROM measurements ORDER BY bus_offset")
            )
        ).scalars()
        assert list(printed) == [as_postgres_prints(i) for i in INSTANTS]
    async with engine.connect() as conn:
        back = [r.occurred_at for r in await store.period_measurements(conn, "c", "2026-10")]
    assert back == INSTANTS
