"""Database access through SQLAlchemy async: SQLite (aiosqlite) or Postgres (asyncpg)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy import DateTime, MetaData, Table, TypeDecorator, event, inspect, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn


def normalise_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite://` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL, full sync and a busy timeout so a crash loses nothing."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    event.listen(engine.sync_engine, "connect", _asyncpg_codecs)
    return engine


def _asyncpg_codecs(dbapi_connection: Any, _record: Any) -> None:
    """`timestamptz` through `timestamptz_to_pg` and `timestamptz_from_pg` on every
    connection of the engine (plain SQL and the fold's COPY alike)."""
    dbapi_connection.run_async(
        lambda driver: driver.set_type_codec(
            "timestamptz",
            schema="pg_catalog",
            encoder=timestamptz_to_pg,
            decoder=timestamptz_from_pg,
            format="tuple",
        )
    )


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PG_INFINITY, _PG_MINUS_INFINITY = 2**63 - 1, -(2**63)


def timestamptz_to_pg(value: datetime) -> tuple[int]:
    """A `timestamptz` as Postgres holds it: microseconds since 2000 in UTC, with the same
    meaning as asyncpg's own encoder (a naive datetime is local time; naive `datetime.max`
    and `datetime.min` are ±infinity), at a fraction of its cost. Its encoder compares every
    value with both infinities first, which for an aware datetime against a naive one costs
    a noticeable share of a binary COPY's cost; the ledger's fold sends one instant per
    measurement (docs/benchmarks.md)."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None and value in (datetime.max, datetime.min):
            return (_PG_INFINITY if value == datetime.max else _PG_MINUS_INFINITY,)
        value = value.astimezone(UTC)
    return ((value - _PG_EPOCH) // _MICROSECOND,)


def timestamptz_from_pg(value: tuple[int]) -> datetime:
    """Back to an aware UTC datetime (±infinity as naive `datetime.max`/`min`, as asyncpg)."""
    (micros,) = value
    if micros == _PG_INFINITY:
        return datetime.max
    if micros == _PG_MINUS_INFINITY:
        return datetime.min
    return _PG_EPOCH + timedelta(microseconds=micros)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any, within_s: float = 30.0) -> None:
    """Switch a database file to WAL (it stays so). On a fresh file opened by several
    processes at once, SQLite refuses the switch while another connection writes, without
    waiting (its busy handler is skipped there to avoid a deadlock): so wait here."""
    deadline = time.monotonic() + within_s
    while True:
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except Exception as exc:  # the driver's OperationalError, as the adapter wraps it
            if "database is locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def is_postgres(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "postgresql"


def upsert(engine: AsyncEngine | AsyncConnection, table: Table) -> Any:
    """`INSERT` with the dialect's `ON CONFLICT` clauses (Postgres or SQLite) for `table`."""
    return (pg_insert if is_postgres(engine) else sqlite_insert)(table)


# Any constant of our own: the key of the advisory lock schema creators take on Postgres.
_SCHEMA_LOCK_KEY = 0x51A9A7


async def create_schema(engine: AsyncEngine, metadata: MetaData) -> None:
    """Create missing tables (schema is additive so far; see docs/configuration.md, "Schema").

    Several processes may start on one fresh database at once (`slapay run`, replicas):
    each creates the schema in one transaction that first takes the database's write lock
    (SQLite `BEGIN IMMEDIATE`, a Postgres advisory lock), so the later ones find the tables
    made, not half made, and never fail with "already exists"."""
    async with engine.connect() as conn:
        if is_postgres(conn):
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
        else:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_add_missing_columns, metadata)
        await conn.run_sync(_create_missing_indexes, metadata)
        await conn.commit()


def _add_missing_columns(connection: Any, metadata: MetaData) -> None:
    """Nullable columns added to a table that an older version already created (the rows it
    holds read as NULL there, which is what the column means for them)."""
    inspector = inspect(connection)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                ddl = CreateColumn(column).compile(dialect=connection.dialect)
                connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


def _create_missing_indexes(connection: Any, metadata: MetaData) -> None:
    """Indexes added to a table that an older version already created (`create_all` only
    makes a table's indexes along with the table)."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)


async def asyncpg_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, in its transaction: for statements run every
    batch, prepared once per connection and built without SQLAlchemy's compiler."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return cast("asyncpg.Connection", driver)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
