"""Ledger tables and queries: contract versions, measurements, running aggregates."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    Dialect,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    delete,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import db, jsonutil
from shared.core import decimals
from shared.db import UtcDateTime


class DecimalText(TypeDecorator[Decimal]):
    """A decimal kept exactly on SQLite, as its text (SQLite stores NUMERIC as a double)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


Exact = Numeric(asdecimal=True).with_variant(DecimalText(), "sqlite")
"""A measurement value or aggregate: Postgres `numeric` (exact, any double's magnitude),
SQLite text; both read back as the very `Decimal` written."""

metadata = MetaData()
contract_terms = Table(
    "contract_terms",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("effective_from", String(7), nullable=False),
    Column("terms", Text, nullable=False),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("agreed_at", UtcDateTime, nullable=False),
)
measurements = Table(
    "measurements",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("kpi", String(100), nullable=False),
    Column("value", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("bus_partition", Integer, nullable=False),
    Column("bus_offset", BigInteger, nullable=False),
    Index("ix_measurements_contract_period", "contract_id", "period"),
)
ratings = Table(
    "ratings",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("reviewer", String(128), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("flags", Text, nullable=False),
    Column("bus_partition", Integer, nullable=False),
    Column("bus_offset", BigInteger, nullable=False),
    Index("ix_ratings_contract_period", "contract_id", "period"),
)
kpi_aggregates = Table(
    "kpi_aggregates",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("kpi", String(100), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("total", Exact, nullable=False),
    Column("minimum", Exact, nullable=False),
    Column("maximum", Exact, nullable=False),
)
dirty_periods = Table(
    "dirty_periods",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("marks", BigInteger, nullable=False),
)


class MeasurementRow(NamedTuple):
    """A row of `measurements`, fields in column order (it is the record COPY sends).
    `value` is the decimal as its JSON number spelled it; `number` is that decimal."""

    event_id: str
    contract_id: str
    period: str
    kpi: str
    value: str
    occurred_at: datetime
    bus_partition: int
    bus_offset: int

    @property
    def number(self) -> Decimal:
        return Decimal(self.value)


@dataclass(frozen=True, slots=True)
class RatingRow:
    event_id: str
    contract_id: str
    period: str
    reviewer: str
    rating: int
    occurred_at: datetime
    flags: str
    bus_partition: int
    bus_offset: int


async def insert_new_ratings(conn: AsyncConnection, rows: Sequence[RatingRow]) -> list[RatingRow]:
    """Insert, skipping event ids already applied; return only the rows that were new."""
    new = []
    for row in rows:
        statement = (
            db.upsert(conn, ratings)
            .values(**{name: getattr(row, name) for name in RatingRow.__slots__})
            .on_conflict_do_nothing()
        )
        if (await conn.execute(statement)).rowcount:
            new.append(row)
    return new


async def period_ratings(conn: AsyncConnection, contract_id: str, period: str) -> list[RatingRow]:
    r = ratings.c
    result = await conn.execute(
        select(ratings)
        .where(and_(r.contract_id == contract_id, r.period == period))
        .order_by(r.bus_partition, r.bus_offset)
    )
    return [RatingRow(**row._mapping) for row in result]


async def add_terms(
    conn: AsyncConnection,
    contract_id: str,
    version: int,
    terms: dict[str, Any],
    event_id: str,
    agreed_at: datetime,
) -> bool:
    """Record a version once; False if that version already exists."""
    statement = (
        db.upsert(conn, contract_terms)
        .values(
            contract_id=contract_id,
            version=version,
            effective_from=terms["effective_from"],
            terms=jsonutil.dumps(terms).decode(),
            event_id=event_id,
            agreed_at=agreed_at,
        )
        .on_conflict_do_nothing()
    )
    result = await conn.execute(statement)
    return bool(result.rowcount)


async def version_event(conn: AsyncConnection, contract_id: str, version: int) -> str | None:
    """The id of the event that agreed this version, if it is stored."""
    c = contract_terms.c
    row = (
        await conn.execute(
            select(c.event_id).where(and_(c.contract_id == contract_id, c.version == version))
        )
    ).first()
    return None if row is None else str(row[0])


async def terms_versions(
    conn: AsyncConnection, contract_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every stored version of each contract, oldest first."""
    texts = await terms_texts(conn, contract_ids)
    return {c: [jsonutil.loads(text) for text in found] for c, found in texts.items()}


async def terms_texts(conn: AsyncConnection, contract_ids: Sequence[str]) -> dict[str, list[str]]:
    """`terms_versions` as stored: JSON text."""
    result = await conn.execute(
        select(contract_terms.c.contract_id, contract_terms.c.terms)
        .where(contract_terms.c.contract_id.in_(list(contract_ids)))
        .order_by(contract_terms.c.contract_id, contract_terms.c.version)
    )
    found: dict[str, list[str]] = {}
    for row in result:
        found.setdefault(row.contract_id, []).append(row.terms)
    return found


async def insert_new_measurements(
    conn: AsyncConnection, rows: Sequence[MeasurementRow]
) -> list[MeasurementRow]:
    """Insert, skipping event ids already applied (earlier, or earlier in `rows`); return
    only the rows that were new."""
    if len(set(map(_EVENT_ID, rows))) < len(rows):  # a repeat inside the batch (rare)
        first: dict[str, MeasurementRow] = {}
        for row in rows:
            first.setdefault(row.event_id, row)
        rows = list(first.values())
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return await _insert_postgres(conn, rows)
    statement = (
        sqlite_insert(measurements)
        .on_conflict_do_nothing(index_elements=[measurements.c.event_id])
        .returning(measurements.c.event_id)
    )
    result = await conn.execute(statement, [r._asdict() for r in rows])
    inserted = {row[0] for row in result}
    return [r for r in rows if r.event_id in inserted]


async def _insert_postgres(
    conn: AsyncConnection, rows: Sequence[MeasurementRow]
) -> list[MeasurementRow]:
    """Binary COPY straight into `measurements` inside a savepoint: raw COPY speed when every
    event is new, the usual case. If one was applied before (a redelivered batch, a retried
    send), the savepoint is rolled back and the batch goes in as one INSERT ... SELECT FROM
    unnest(...) ON CONFLICT DO NOTHING instead: idempotent per event id either way."""
    driver = await _driver(conn)
    try:
        async with conn.begin_nested():
            await driver.copy_records_to_table("measurements", records=rows, columns=_COLUMNS)
        return list(rows)
    except asyncpg.UniqueViolationError:
        pass
    inserted = {record[0] for record in await driver.fetch(_UNNEST, *zip(*rows, strict=True))}
    return [r for r in rows if r.event_id in inserted]


async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, in its transaction: for statements the fold runs
    every batch, prepared once per connection and built without SQLAlchemy's compiler."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    return cast("asyncpg.Connection", driver)


_COLUMNS = list(MeasurementRow._fields)
_EVENT_ID = operator.attrgetter("event_id")
_UNNEST = (
    f"INSERT INTO measurements ({', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], "
    "$5::text[], $6::timestamptz[], $7::int[], $8::bigint[]) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


async def fold_aggregates(
    conn: AsyncConnection, new_rows: Sequence[MeasurementRow]
) -> set[tuple[str, str]]:
    """Add new measurements to the running per-(contract, period, KPI) aggregates, exactly."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for row in new_rows:
        groups.setdefault((row.contract_id, row.period, row.kpi), []).append(row.value)
    if not groups:
        return set()
    ordered = sorted(groups.items())  # rows locked in one order by every replica
    if conn.dialect.name == "postgresql":
        # Postgres reads the values' text as numeric and adds them up itself; a JSON
        # number has no comma, so one string per group carries its values
        columns = zip(*((c, p, k, ",".join(v)) for (c, p, k), v in ordered), strict=True)
        await (await _driver(conn)).execute(_ADD_AGGREGATES, *columns)
    else:
        await _add_aggregates_sqlite(conn, ordered)
    return {(c, p) for c, p, _ in groups}


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A KPI's running count, exact total, minimum and maximum in one period."""

    count: int
    total: Decimal
    minimum: Decimal
    maximum: Decimal

    def merged(self, other: Aggregate) -> Aggregate:
        return Aggregate(
            self.count + other.count,
            decimals.add(self.total, other.total),
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )


async def _add_aggregates_sqlite(
    conn: AsyncConnection, groups: Sequence[tuple[tuple[str, str, str], list[str]]]
) -> None:
    """SQLite has no exact arithmetic on the text it keeps decimals in: read, add, write
    (one writer at a time, inside the fold's transaction)."""
    added = {}
    for key, texts in groups:
        numbers = list(map(Decimal, texts))
        added[key] = Aggregate(
            len(numbers), decimals.exact_sum(numbers), min(numbers), max(numbers)
        )
    t = kpi_aggregates.c
    keys = tuple_(t.contract_id, t.period, t.kpi)
    found = await conn.execute(select(kpi_aggregates).where(keys.in_(list(added))))
    for row in found.mappings():
        at = (row["contract_id"], row["period"], row["kpi"])
        stored = Aggregate(row["count"], row["total"], row["minimum"], row["maximum"])
        added[at] = stored.merged(added[at])
    statement = db.upsert(conn, kpi_aggregates).values(
        [
            {"contract_id": c, "period": p, "kpi": k, "count": a.count, "total": a.total}
            | {"minimum": a.minimum, "maximum": a.maximum}
            for (c, p, k), a in sorted(added.items())
        ]
    )
    x = statement.excluded
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[t.contract_id, t.period, t.kpi],
            set_={"count": x.count, "total": x.total, "minimum": x.minimum, "maximum": x.maximum},
        )
    )


_ADD_AGGREGATES = """
INSERT INTO kpi_aggregates AS t (contract_id, period, kpi, count, total, minimum, maximum)
SELECT c, p, k, count(*), sum(x::numeric), min(x::numeric), max(x::numeric)
FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::text[]) AS u (c, p, k, v),
     unnest(string_to_array(v, ',')) AS x
GROUP BY c, p, k
ORDER BY c, p, k
ON CONFLICT (contract_id, period, kpi) DO UPDATE SET
    count = t.count + excluded.count,
    total = t.total + excluded.total,
    minimum = least(t.minimum, excluded.minimum),
    maximum = greatest(t.maximum, excluded.maximum)
"""
_MARK_DIRTY = """
INSERT INTO dirty_periods AS d (contract_id, period, marks)
SELECT c, p, 1 FROM unnest($1::varchar[], $2::varchar[]) AS u (c, p)
ON CONFLICT (contract_id, period) DO UPDATE SET marks = d.marks + 1
"""


async def mark_dirty(conn: AsyncConnection, periods: set[tuple[str, str]]) -> None:
    if not periods:
        return
    if conn.dialect.name == "postgresql":
        await (await _driver(conn)).execute(_MARK_DIRTY, *zip(*sorted(periods), strict=True))
        return
    statement = db.upsert(conn, dirty_periods).values(
        [{"contract_id": c, "period": p, "marks": 1} for c, p in sorted(periods)]
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[dirty_periods.c.contract_id, dirty_periods.c.period],
            set_={"marks": dirty_periods.c.marks + 1},
        )
    )


async def periods_with_data(conn: AsyncConnection, contract_id: str) -> set[tuple[str, str]]:
    result = await conn.execute(
        select(kpi_aggregates.c.period)
        .where(kpi_aggregates.c.contract_id == contract_id)
        .distinct()
    )
    return {(contract_id, row[0]) for row in result}


async def dirty(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(dirty_periods))
        return [(r.contract_id, r.period, r.marks) for r in result]


async def clear_dirty(engine: AsyncEngine, contract_id: str, period: str, marks: int) -> None:
    """Clear a mark unless the period changed again meanwhile."""
    d = dirty_periods.c
    async with engine.begin() as conn:
        await conn.execute(
            delete(dirty_periods).where(
                and_(d.contract_id == contract_id, d.period == period, d.marks == marks)
            )
        )


async def period_measurements(
    conn: AsyncConnection, contract_id: str, period: str, after: int = -1
) -> list[MeasurementRow]:
    """Every measurement folded for a contract's period (past bus offset `after`), in bus order."""
    m = measurements.c
    result = await conn.execute(
        select(measurements)
        .where(and_(m.contract_id == contract_id, m.period == period, m.bus_offset > after))
        .order_by(m.bus_partition, m.bus_offset)
    )
    return [MeasurementRow(**row._mapping) for row in result]


async def positions(
    conn: AsyncConnection, contract_id: str, table: Table = measurements
) -> dict[str, dict[str, int]]:
    """How far the contract's events in `table` were applied: the cut a close records."""
    t = table.c
    result = await conn.execute(
        select(t.bus_partition, func.max(t.bus_offset))
        .where(t.contract_id == contract_id)
        .group_by(t.bus_partition)
    )
    return {str(partition): {"offset": int(offset)} for partition, offset in result}


async def contracts(conn: AsyncConnection) -> list[str]:
    result = await conn.execute(select(contract_terms.c.contract_id).distinct())
    return [row[0] for row in result]


async def agreed_at(
    conn: AsyncConnection, contract_ids: Sequence[str]
) -> dict[str, list[datetime]]:
    """When each version of each contract was agreed, oldest first."""
    c = contract_terms.c
    result = await conn.execute(
        select(c.contract_id, c.agreed_at)
        .where(c.contract_id.in_(list(contract_ids)))
        .order_by(c.contract_id, c.version)
    )
    found: dict[str, list[datetime]] = {}
    for row in result:
        found.setdefault(row.contract_id, []).append(row.agreed_at)
    return found


async def aggregates(engine: AsyncEngine, contract_id: str, period: str) -> list[dict[str, Any]]:
    a = kpi_aggregates.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(kpi_aggregates).where(and_(a.contract_id == contract_id, a.period == period))
        )
        return [dict(row._mapping) for row in result]
