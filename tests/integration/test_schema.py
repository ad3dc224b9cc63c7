"""Several processes starting at once on one fresh database (`slapay run`, replicas) all
create the schema; none fails with "already exists", and none finds it half made."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, Table, text

from services.ingest import store as ingest_store
from services.ledger import journal_store  # its tables are the ledger store's
from services.ledger import store as ledger_store
from services.reviews import store as reviews_store
from services.statements import store as statements_store
from shared import db, idempotency, revocation
from shared.bus import sqllog

pytestmark = pytest.mark.integration
CREATORS = 6
EVERY_SCHEMA = (
    sqllog.metadata,
    ingest_store.metadata,
    ledger_store.metadata,
    reviews_store.metadata,
    statements_store.metadata,
    idempotency.metadata,
    revocation.metadata,
)


async def race(url: str) -> MetaData:
    """Each creator makes every service's tables, in its own engine, all at once."""
    engines = [db.create_engine(url) for _ in range(CREATORS)]
    try:

        async def creator(engine: object) -> None:
            for metadata in EVERY_SCHEMA:
                await db.create_schema(engine, metadata)  # type: ignore[arg-type]

        await asyncio.gather(*(creator(e) for e in engines))
        found = MetaData()
        async with engines[0].connect() as conn:
            await conn.run_sync(found.reflect)
        return found
    finally:
        for engine in engines:
            await engine.dispose()


TRIGGERS = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
}


async def assert_complete(url: str, found: MetaData) -> None:
    expected = {name for metadata in EVERY_SCHEMA for name in metadata.tables}
    assert {journal_store.journal.name, "bus_log"} <= expected <= set(found.tables)
    engine = db.create_engine(url)
    try:  # the journal's guards, made with its table, are there too, once each
        async with engine.connect() as conn:
            triggers = (await conn.execute(text(TRIGGERS[engine.dialect.name]))).scalars()
            assert sorted(t for t in triggers if t.startswith("journal_")) == (
                ["journal_no_change", "journal_no_truncate"]
                if db.is_postgres(engine)
                else ["journal_no_delete", "journal_no_update"]
            )
    finally:
        await engine.dispose()


async def test_concurrent_creators_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await assert_complete(url, await race(url))


async def test_concurrent_creators_on_postgres(postgres_url: str) -> None:
    await assert_complete(postgres_url, await race(postgres_url))


async def added_column_is_made(url: str) -> None:
    """A `measurements` table an older version made (no `party`) gets the column, keeping
    its rows (NULL: unsigned), and a second start changes nothing."""
    older = MetaData()
    Table(
        "measurements",
        older,
        *(
            Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in ledger_store.measurements.columns
            if c.name != "party"
        ),
    )
    engine = db.create_engine(url)
    try:
        await db.create_schema(engine, older)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO measurements (event_id, contract_id, period, kpi, value,"
                    " occurred_at, bus_partition, bus_offset)"
                    " VALUES ('e', 'c', '2026-10', 'k', '1', '2026-10-01 00:00:00', 0, 0)"
                )
            )
        for _ in range(2):
            await db.create_schema(engine, ledger_store.metadata)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT event_id, party FROM measurements"))).all()
        assert [tuple(row) for row in rows] == [("e", None)]
    finally:
        await engine.dispose()


async def test_a_column_added_since_is_made_on_sqlite(tmp_path: Path) -> None:
    await added_column_is_made(f"sqlite+aiosqlite:///{tmp_path / 'older.db'}")


async def test_a_column_added_since_is_made_on_postgres(postgres_url: str) -> None:
    await added_column_is_made(postgres_url)
