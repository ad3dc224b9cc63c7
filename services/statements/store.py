"""Read model of statements, fed by `slapay.journal` (statements, entries) and
`slapay.contracts` (terms versions, disputes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import db, jsonutil
from shared.core.journal import JournalEntry
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
    Column("ticket_breaches", Text, nullable=True),
    # each ticket KPI's breached tickets, published beside the statement (docs/tickets.md)
)
entries = Table(
    "journal_entries",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("period", String(7), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("amount", String(40), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_entries_contract_seq", "contract_id", "seq", unique=True),
)
contract_versions = Table(
    "contract_versions",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("customer", Text, nullable=False),
    Column("currency", String(3), nullable=False),
)
disputes = Table(
    "disputes",
    metadata,
    Column("dispute_id", String(64), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("body", Text, nullable=False),
)


async def put_statement(
    conn: AsyncConnection,
    statement: dict[str, Any],
    as_of: datetime,
    ticket_breaches: list[dict[str, Any]] | None = None,
) -> None:
    """Keep the newest snapshot, with the breached tickets published beside it; a final
    statement is never replaced by a provisional one."""
    s = statements.c
    row = db.upsert(conn, statements).values(
        contract_id=statement["contract_id"],
        period=statement["period"],
        status=statement["status"],
        body=jsonutil.dumps(statement).decode(),
        as_of=as_of,
        ticket_breaches=jsonutil.dumps(ticket_breaches).decode() if ticket_breaches else None,
    )
    newer = s.as_of < row.excluded.as_of
    if statement["status"] == "final":
        newer = or_(s.status != "final", newer)
    else:
        newer = and_(newer, s.status != "final")
    await conn.execute(
        row.on_conflict_do_update(
            index_elements=[s.contract_id, s.period],
            set_={
                "status": row.excluded.status,
                "body": row.excluded.body,
                "as_of": row.excluded.as_of,
                "ticket_breaches": row.excluded.ticket_breaches,
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


async def ticket_breaches(engine: AsyncEngine, contract_id: str) -> dict[str, list[dict[str, Any]]]:
    """Per period, the breached tickets published with its statement (none stored: no ticket
    KPI, or a statement from before they were published)."""
    s = statements.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(s.period, s.ticket_breaches).where(
                and_(s.contract_id == contract_id, s.ticket_breaches.is_not(None))
            )
        )
        return {row.period: jsonutil.loads(row.ticket_breaches) for row in result}


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


async def put_entry(conn: AsyncConnection, entry: JournalEntry, posted_at: datetime) -> None:
    await conn.execute(
        db.upsert(conn, entries)
        .values(
            entry_id=entry.entry_id,
            contract_id=entry.contract_id,
            seq=entry.seq,
            period=entry.period,
            kind=entry.kind,
            amount=str(entry.amount),
            currency=entry.currency,
            posted_at=posted_at,
            body=jsonutil.dumps(entry.document()).decode(),
        )
        .on_conflict_do_nothing()
    )


async def list_entries(
    engine: AsyncEngine, contract_id: str, until: datetime | None = None
) -> list[JournalEntry]:
    e = entries.c
    query = select(e.body).where(e.contract_id == contract_id).order_by(e.seq)
    if until is not None:
        query = query.where(e.posted_at <= until)
    async with engine.connect() as conn:
        return [JournalEntry.model_validate_json(r.body) for r in await conn.execute(query)]


async def entry_rows(engine: AsyncEngine, contract_id: str) -> list[dict[str, Any]]:
    """The contract's stored entries, every column, in chain order (for verification)."""
    e = entries.c
    query = select(entries).where(e.contract_id == contract_id).order_by(e.seq)
    async with engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]


async def put_dispute(conn: AsyncConnection, dispute: dict[str, Any]) -> None:
    """Keep the latest state of a dispute (opened, then accepted or rejected)."""
    row = db.upsert(conn, disputes).values(
        dispute_id=dispute["dispute_id"],
        contract_id=dispute["contract_id"],
        period=dispute["period"],
        body=jsonutil.dumps(dispute).decode(),
    )
    await conn.execute(
        row.on_conflict_do_update(
            index_elements=[disputes.c.dispute_id], set_={"body": row.excluded.body}
        )
    )


async def get_dispute(conn: AsyncConnection, dispute_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(disputes.c.body).where(disputes.c.dispute_id == dispute_id))
    ).first()
    return jsonutil.loads(row.body) if row else None


async def list_disputes(
    engine: AsyncEngine, contract_id: str, period: str | None = None
) -> list[dict[str, Any]]:
    d = disputes.c
    query = select(d.body).where(d.contract_id == contract_id).order_by(d.dispute_id)
    if period is not None:
        query = query.where(d.period == period)
    async with engine.connect() as conn:
        return [jsonutil.loads(r.body) for r in await conn.execute(query)]


async def put_terms_version(
    conn: AsyncConnection, contract_id: str, version: int, terms: dict[str, str]
) -> None:
    """Remember a terms version's provider, customer and currency (a redelivery changes
    nothing)."""
    await conn.execute(
        db.upsert(conn, contract_versions)
        .values(
            contract_id=contract_id,
            version=version,
            provider=terms["provider"],
            customer=terms["customer"],
            currency=terms["currency"],
        )
        .on_conflict_do_nothing()
    )


async def list_contracts(
    engine: AsyncEngine, only: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """Each contract (all, or those in `only`) as its latest terms name it, with how many
    terms versions it has, by contract id."""
    c = contract_versions.c
    query = select(contract_versions).order_by(c.contract_id, c.version)
    if only is not None:
        query = query.where(c.contract_id.in_(sorted(only)))
    found: dict[str, dict[str, Any]] = {}
    async with engine.connect() as conn:
        for row in await conn.execute(query):
            held = found.get(row.contract_id)
            found[row.contract_id] = {
                "contract_id": row.contract_id,
                "provider": row.provider,
                "customer": row.customer,
                "currency": row.currency,
                "versions": (held["versions"] if held else 0) + 1,
            }
    return list(found.values())
