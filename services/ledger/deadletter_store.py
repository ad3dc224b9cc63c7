"""Dead letters as the ledger lists them to admins: every record any consumer set aside,
read from `slapay.deadletter` (one row per dead letter, keyed by its place on that topic)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger.store import metadata
from shared import db, deadletters
from shared.bus import Record
from shared.db import UtcDateTime
from shared.events import utcnow

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    Column("contract_id", String(200), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("event_id", String(100)),
    Column("measurement_id", String(200)),
    Column("kind", String(40), nullable=False),
    Column("group_name", String(200)),
    Column("reason", Text, nullable=False),
    Column("dead_lettered_at", UtcDateTime, nullable=False),
    Index("ix_dead_letters_contract", "contract_id", "dead_lettered_at"),
)


def rows_of(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The listing rows of dead-letter records (anything else on the topic is skipped)."""
    rows = []
    for record in records:
        body = deadletters.parse(record.value)
        if body is None:
            continue
        rows.append(
            {
                "partition": record.partition,
                "offset": record.offset,
                "contract_id": _text(body.get("contract_id")) or record.key,
                "topic": body["topic"],
                "event_id": _text(body.get("event_id")),
                "measurement_id": _text(body.get("measurement_id")),
                "kind": _text(body.get("kind")) or record.headers.get("reason") or "unreadable",
                "group_name": _text(body.get("group")),
                "reason": _text(body.get("reason")) or "",
                "dead_lettered_at": _instant(body.get("dead_lettered_at")),
            }
        )
    return rows


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _instant(value: object) -> datetime:
    """When it was set aside; dead letters older than that field are dated on arrival."""
    if isinstance(value, str):
        try:
            found = datetime.fromisoformat(value)
        except ValueError:
            return utcnow()
        if found.tzinfo is not None:
            return found
    return utcnow()


async def add(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    """Store rows once (a redelivered record changes nothing)."""
    if not rows:
        return
    statement = db.upsert(engine, dead_letters).values(list(rows))
    async with engine.begin() as conn:
        await conn.execute(statement.on_conflict_do_nothing())


async def listing(engine: AsyncEngine, contract_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest dead letters first, of one contract or of all."""
    t = dead_letters.c
    query = select(dead_letters).order_by(t.dead_lettered_at.desc(), t.offset.desc()).limit(limit)
    if contract_id is not None:
        query = query.where(t.contract_id == contract_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {
            "event_id": row.event_id,
            "topic": row.topic,
            "contract_id": row.contract_id,
            "reason": row.reason,
            "kind": row.kind,
            "group": row.group_name,
            "dead_lettered_at": row.dead_lettered_at,
            "measurement_id": row.measurement_id,
        }
        for row in rows
    ]
