"""Ledger tables and queries: contract versions, measurements, running aggregates."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

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
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import db, jsonutil
from shared.core.tally import Tally
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
    Column("party", String(20), nullable=True),  # a signed measurement's; docs/architecture.md
    Index("ix_measurements_contract_period", "contract_id", "period"),
)
applied_positions = Table(
    "applied_positions",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("bus_partition", Integer, primary_key=True),
    Column("bus_offset", BigInteger, nullable=False),
)
"""The highest bus offset of each contract's measurements applied, per partition: the cut a
posting records, kept by the fold as it inserts, so reading it does not read the month."""
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
rating_sources = Table(
    "rating_sources",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("source", String(64), nullable=False),
)
"""Where each rating came in (`api`, `import`): beside `ratings`, which an earlier version
created without it."""
review_releases = Table(
    "review_releases",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("bus_partition", Integer, nullable=False),
    Column("bus_offset", BigInteger, nullable=False),
    Index("ix_review_releases_contract_period", "contract_id", "period"),
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
kpi_tallies = Table(
    "kpi_tallies",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("kpi", String(100), primary_key=True),
    Column("tally", Text, nullable=False),
)
"""A closed period's `Tally` per KPI: what its late events are checked against."""
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
    party: str | None = None

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
    source: str = "api"


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """A `review.line.released`: the review line of `period` released up to its place."""

    event_id: str
    contract_id: str
    period: str
    bus_partition: int
    bus_offset: int


_RATING_COLUMNS = [c.name for c in ratings.columns]


async def insert_new_ratings(conn: AsyncConnection, rows: Sequence[RatingRow]) -> list[RatingRow]:
    """Insert, skipping event ids already applied; return only the rows that were new."""
    new = []
    for row in rows:
        statement = (
            db.upsert(conn, ratings)
            .values(**{name: getattr(row, name) for name in _RATING_COLUMNS})
            .on_conflict_do_nothing()
        )
        if (await conn.execute(statement)).rowcount:
            source = db.upsert(conn, rating_sources).values(
                event_id=row.event_id, source=row.source
            )
            await conn.execute(source.on_conflict_do_nothing())
            new.append(row)
    return new


async def period_ratings(conn: AsyncConnection, contract_id: str, period: str) -> list[RatingRow]:
    r = ratings.c
    result = await conn.execute(
        select(ratings, func.coalesce(rating_sources.c.source, "api").label("source"))
        .outerjoin(rating_sources, rating_sources.c.event_id == r.event_id)
        .where(and_(r.contract_id == contract_id, r.period == period))
        .order_by(r.bus_partition, r.bus_offset)
    )
    return [RatingRow(**row._mapping) for row in result]


async def tallies(conn: AsyncConnection, contract_id: str, period: str) -> dict[str, Tally]:
    t = kpi_tallies.c
    result = await conn.execute(
        select(t.kpi, t.tally).where(and_(t.contract_id == contract_id, t.period == period))
    )
    return {kpi: Tally.from_document(jsonutil.loads(text)) for kpi, text in result}


async def keep_tallies(
    conn: AsyncConnection, contract_id: str, period: str, found: dict[str, Tally]
) -> None:
    t = kpi_tallies.c
    await conn.execute(
        delete(kpi_tallies).where(and_(t.contract_id == contract_id, t.period == period))
    )
    if found:
        rows = [
            {
                "contract_id": contract_id,
                "period": period,
                "kpi": kpi,
                "tally": jsonutil.dumps(tally.document()).decode(),
            }
            for kpi, tally in found.items()
        ]
        await conn.execute(kpi_tallies.insert(), rows)


async def insert_new_releases(
    conn: AsyncConnection, rows: Sequence[ReleaseRow]
) -> list[ReleaseRow]:
    """Insert, skipping event ids already applied; return only the rows that were new."""
    new = []
    for row in rows:
        statement = (
            db.upsert(conn, review_releases)
            .values(**{name: getattr(row, name) for name in ReleaseRow.__slots__})
            .on_conflict_do_nothing()
        )
        if (await conn.execute(statement)).rowcount:
            new.append(row)
    return new


async def period_releases(conn: AsyncConnection, contract_id: str, period: str) -> list[ReleaseRow]:
    t = review_releases.c
    result = await conn.execute(
        select(review_releases)
        .where(and_(t.contract_id == contract_id, t.period == period))
        .order_by(t.bus_partition, t.bus_offset)
    )
    return [ReleaseRow(**row._mapping) for row in result]


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


_MARK_DIRTY = """
INSERT INTO dirty_periods AS d (contract_id, period, marks)
SELECT c, p, 1 FROM unnest($1::varchar[], $2::varchar[]) AS u (c, p)
ON CONFLICT (contract_id, period) DO UPDATE SET marks = d.marks + 1
"""


async def mark_dirty(conn: AsyncConnection, periods: set[tuple[str, str]]) -> None:
    if not periods:
        return
    if conn.dialect.name == "postgresql":
        await (await db.asyncpg_connection(conn)).execute(
            _MARK_DIRTY, *zip(*sorted(periods), strict=True)
        )
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


async def period_measurement_chunks(
    conn: AsyncConnection, contract_id: str, period: str, size: int = 10_000
) -> AsyncIterator[list[MeasurementRow]]:
    """`period_measurements`, streamed a chunk at a time, so a period of millions is never
    held as rows all at once."""
    m = measurements.c
    result = await conn.stream(
        select(measurements)
        .where(and_(m.contract_id == contract_id, m.period == period))
        .order_by(m.bus_partition, m.bus_offset)
    )
    async for chunk in result.partitions(size):
        yield [MeasurementRow(**row._mapping) for row in chunk]


async def period_measurements_after(
    conn: AsyncConnection, contract_id: str, period: str, cut: Mapping[str, Any]
) -> list[MeasurementRow]:
    """The period's measurements applied after `cut` (a partition → offset map, the one a
    close records), in bus order: its late events, however large the period."""
    m = measurements.c
    later = [
        and_(m.bus_partition == int(partition), m.bus_offset > int(place["offset"]))
        for partition, place in cut.items()
    ]
    result = await conn.execute(
        select(measurements)
        .where(
            and_(
                m.contract_id == contract_id,
                m.period == period,
                or_(m.bus_partition.notin_([int(p) for p in cut]), *later),
            )
        )
        .order_by(m.bus_partition, m.bus_offset)
    )
    return [MeasurementRow(**row._mapping) for row in result]


async def positions(
    conn: AsyncConnection, contract_id: str, table: Table = measurements
) -> dict[str, dict[str, int]]:
    """How far the contract's events in `table` were applied: the cut a close records. For
    measurements, as `applied_positions` keeps it; a contract whose measurements were all
    applied before that table was kept has its rows read instead."""
    if table is measurements:
        a = applied_positions.c
        kept = await conn.execute(
            select(a.bus_partition, a.bus_offset).where(a.contract_id == contract_id)
        )
        found = {str(partition): {"offset": int(offset)} for partition, offset in kept}
        if found:
            return found
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
