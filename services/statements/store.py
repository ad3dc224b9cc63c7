"""Read model of statements, fed by `slapay.journal`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, Text, and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import jsonutil
from shared.db import UtcDateTime

metadata = MetaData()
statements = Table(
    "statements",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("as_of", UtcDateTime, nullable=False),
)


async def put_statement(conn: AsyncConnection, statement: dict[str, Any], as_of: datetime) -> None:
    """Keep the newest snapshot; a final statement is never replaced by a provisional one."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    s = statements.c
    row = insert(statements).values(
        contract_id=statement["contract_id"],
        period=statement["period"],
        status=statement["status"],
        body=jsonutil.dumps(statement).decode(),
        as_of=as_of,
    )
    newer = s.as_of < row.excluded.as_of
    if statement["status"] != "final":
        newer = and_(newer, s.status != "final")
    await conn.execute(
        row.on_conflict_do_update(
            index_elements=[s.contract_id, s.period],
            set_={
                "status": row.excluded.status,
                "body": row.excluded.body,
                "as_of": row.excluded.as_of,
            },
            where=newer,
        )
    )


async def list_statements(engine: AsyncEngine, contract_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(statements.c.body)
            .where(statements.c.contract_id == contract_id)
            .order_by(statements.c.period)
        )
        return [jsonutil.loads(row.body) for row in result]


async def get_statement(
    engine: AsyncEngine, contract_id: str, period: str
) -> dict[str, Any] | None:
    s = statements.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(s.body).where(and_(s.contract_id == contract_id, s.period == period))
        )
        row = result.first()
        return jsonutil.loads(row.body) if row else None
