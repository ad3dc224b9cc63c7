"""The fold's write path: a batch of measurements into `measurements`, then into the running
per-(contract, period, KPI) aggregates, in the fold's transaction. On Postgres a binary COPY
and one prepared statement; on SQLite plain statements."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.ledger.store import (
    MeasurementRow,
    applied_positions,
    kpi_aggregates,
    measurements,
)
from shared import db
from shared.core import decimals


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
        new = await _insert_postgres(conn, rows)
    else:
        statement = (
            sqlite_insert(measurements)
            .on_conflict_do_nothing(index_elements=[measurements.c.event_id])
            .returning(measurements.c.event_id)
        )
        result = await conn.execute(statement, [r._asdict() for r in rows])
        inserted = {row[0] for row in result}
        new = [r for r in rows if r.event_id in inserted]
    await _advance_positions(conn, new)
    return new


async def _advance_positions(conn: AsyncConnection, rows: Sequence[MeasurementRow]) -> None:
    """Raise each (contract, partition)'s applied offset to the highest among `rows`."""
    highest: dict[tuple[str, int], int] = {}
    for row in rows:
        key = (row.contract_id, row.bus_partition)
        highest[key] = max(highest.get(key, -1), row.bus_offset)
    if not highest:
        return
    a = applied_positions.c
    statement = db.upsert(conn, applied_positions)
    larger = func.greatest if db.is_postgres(conn) else func.max
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[a.contract_id, a.bus_partition],
            set_={"bus_offset": larger(a.bus_offset, statement.excluded.bus_offset)},
        ),
        [
            {"contract_id": c, "bus_partition": p, "bus_offset": o}
            for (c, p), o in sorted(highest.items())  # rows locked in one order by every replica
        ],
    )


async def _insert_postgres(
    conn: AsyncConnection, rows: Sequence[MeasurementRow]
) -> list[MeasurementRow]:
    """Binary COPY straight into `measurements` inside a savepoint: raw COPY speed when every
    event is new, the usual case. If one was applied before (a redelivered batch, a retried
    send), the savepoint is rolled back and the batch goes in as one INSERT ... SELECT FROM
    unnest(...) ON CONFLICT DO NOTHING instead: idempotent per event id either way."""
    driver = await db.asyncpg_connection(conn)
    try:
        async with conn.begin_nested():
            await driver.copy_records_to_table("measurements", records=rows, columns=_COLUMNS)
        return list(rows)
    except asyncpg.UniqueViolationError:
        pass
    inserted = {record[0] for record in await driver.fetch(_UNNEST, *zip(*rows, strict=True))}
    return [r for r in rows if r.event_id in inserted]


_COLUMNS = list(MeasurementRow._fields)
_EVENT_ID = operator.attrgetter("event_id")
_UNNEST = (
    f"INSERT INTO measurements ({', '.join(_COLUMNS)}) "
    "SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], "
    "$5::text[], $6::timestamptz[], $7::int[], $8::bigint[], $9::varchar[]) "
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
        await (await db.asyncpg_connection(conn)).execute(_ADD_AGGREGATES, *columns)
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
