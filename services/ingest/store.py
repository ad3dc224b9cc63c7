"""Ingest remembers the event ids it published, each with a digest of what its measurement
said, to tell a retried batch (duplicates) from a `measurement_id` reused for other content
(a conflict). The memory is kept for `ingest_dedupe_days`; past that the ledger's dedupe
by event id still keeps a retry from counting twice."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import Column, Index, MetaData, String, Table, delete, func, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.db import UtcDateTime

metadata = MetaData()
published = Table(
    "published_measurements",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("published_at", UtcDateTime, server_default=func.now(), nullable=False),
    Index("published_measurements_by_time", "published_at"),
)


# On Postgres the ids and digests go as one comma-separated text each (uuids and hex digits
# hold no comma): one parameter, not hundreds, and no array for the driver to encode item by
# item. Each statement runs alone in autocommit: no BEGIN, COMMIT or ROLLBACK round trips.
_SEEN_PG = text(
    "SELECT event_id, digest FROM published_measurements "
    "WHERE event_id = ANY(string_to_array(:ids, ','))"
)
_REMEMBER_PG = text(
    "INSERT INTO published_measurements (event_id, digest) "
    "SELECT * FROM unnest(string_to_array(:ids, ','), string_to_array(:digests, ',')) "
    "ON CONFLICT (event_id) DO NOTHING"
)


async def already_published(engine: AsyncEngine, event_ids: Collection[str]) -> dict[str, str]:
    """The digest of each of `event_ids` published before (those not remembered are absent)."""
    if not event_ids:
        return {}
    async with engine.connect() as conn:
        if db.is_postgres(engine):
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.execute(_SEEN_PG, {"ids": ",".join(event_ids)})
        else:
            result = await conn.execute(
                select(published.c.event_id, published.c.digest).where(
                    published.c.event_id.in_(list(event_ids))
                )
            )
        return {row[0]: row[1] for row in result}


async def remember_published(engine: AsyncEngine, digests: Mapping[str, str]) -> None:
    """Remember `{event_id: digest}` as published."""
    if not digests:
        return
    if db.is_postgres(engine):
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(
                _REMEMBER_PG, {"ids": ",".join(digests), "digests": ",".join(digests.values())}
            )
        return
    statement = sqlite_insert(published).on_conflict_do_nothing(
        index_elements=[published.c.event_id]
    )
    async with engine.begin() as conn:
        await conn.execute(statement, [{"event_id": e, "digest": d} for e, d in digests.items()])


async def forget_before(engine: AsyncEngine, cutoff: datetime) -> int:
    """Forget what was published before `cutoff`; returns how many were forgotten."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(published).where(published.c.published_at < cutoff))
        return int(result.rowcount or 0)
