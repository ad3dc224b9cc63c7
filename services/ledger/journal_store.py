"""The journal (append-only, enforced by the database), its outbox, closes and disputes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ledger.store import metadata
from shared import db, jsonutil
from shared.bus import Message
from shared.core import money
from shared.core.journal import GENESIS, EntryBody, JournalEntry, chain
from shared.db import UtcDateTime

journal = Table(
    "journal",
    metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("contract_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("period", String(7), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("events_digest", String(80), nullable=False),
    Column("corrects_period", String(7)),
    Column("dispute_id", String(64)),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
    Column("posted_at", UtcDateTime, nullable=False),
    UniqueConstraint("contract_id", "seq", name="uq_journal_chain"),
    Index("ix_journal_contract_period", "contract_id", "period"),
)
outbox = Table(
    "outbox",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("topic", String(200), nullable=False),
    Column("key", String(200), nullable=False),
    Column("headers", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
)
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("closed_at", UtcDateTime, nullable=False),
    Column("inputs", Text, nullable=False),
    Column("statement", Text, nullable=False),
)
disputes = Table(
    "disputes",
    metadata,
    Column("dispute_id", String(64), primary_key=True),
    Column("contract_id", String(64), nullable=False, index=True),
    Column("period", String(7), nullable=False),
    Column("line_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("body", Text, nullable=False),
)

_APPEND_ONLY = "journal is append-only: entries are never updated or deleted"
for statement in (
    f"CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
    f"CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END",
):
    event.listen(journal, "after_create", DDL(statement).execute_if(dialect="sqlite"))
for statement in (
    "CREATE OR REPLACE FUNCTION slapay_journal_append_only() RETURNS trigger AS $$ "
    f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$ LANGUAGE plpgsql",
    "CREATE OR REPLACE TRIGGER journal_no_change BEFORE UPDATE OR DELETE ON journal "
    "FOR EACH ROW EXECUTE FUNCTION slapay_journal_append_only()",
    "CREATE OR REPLACE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal "
    "FOR EACH STATEMENT EXECUTE FUNCTION slapay_journal_append_only()",
):
    event.listen(journal, "after_create", DDL(statement).execute_if(dialect="postgresql"))


async def append(
    conn: AsyncConnection, contract_id: str, bodies: Sequence[EntryBody]
) -> list[JournalEntry]:
    """Chain and store entries after the contract's last one; return them complete."""
    j = journal.c
    last = (
        await conn.execute(
            select(j.seq, j.hash)
            .where(j.contract_id == contract_id)
            .order_by(j.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (last.seq, last.hash) if last else (0, GENESIS)
    entries = []
    for body in bodies:
        seq += 1
        entry = chain(prev_hash, body, contract_id, seq)
        prev_hash = entry.hash
        entries.append(entry)
    if entries:
        await conn.execute(journal.insert(), [_row(e) for e in entries])
    return entries


def _row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "entry_id": entry.entry_id,
        "contract_id": entry.contract_id,
        "seq": entry.seq,
        "period": entry.period,
        "kind": entry.kind,
        "amount_minor": int(entry.amount.scaleb(money.minor_digits(entry.currency))),
        "currency": entry.currency,
        "events_digest": entry.events_digest,
        "corrects_period": entry.corrects_period,
        "dispute_id": entry.dispute_id,
        "body": jsonutil.dumps(entry.document()).decode(),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "posted_at": entry.posted,
    }


async def entries(
    engine_or_conn: AsyncEngine | AsyncConnection, contract_id: str, period: str | None = None
) -> list[JournalEntry]:
    """A contract's entries in chain order (optionally those posted into one period)."""
    j = journal.c
    query = select(j.body).where(j.contract_id == contract_id).order_by(j.seq)
    if period is not None:
        query = query.where(j.period == period)
    if isinstance(engine_or_conn, AsyncConnection):
        rows = await engine_or_conn.execute(query)
        return [JournalEntry.model_validate_json(r.body) for r in rows]
    async with engine_or_conn.connect() as conn:
        return [JournalEntry.model_validate_json(r.body) for r in await conn.execute(query)]


async def head(engine: AsyncEngine, contract_id: str) -> str:
    j = journal.c
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(j.hash).where(j.contract_id == contract_id).order_by(j.seq.desc()).limit(1)
            )
        ).first()
    return row.hash if row else GENESIS


async def enqueue(conn: AsyncConnection, messages: Sequence[tuple[str, Message]]) -> None:
    """Stage messages for the bus in the same transaction as the state they announce."""
    if messages:
        await conn.execute(
            outbox.insert(),
            [
                {
                    "topic": t,
                    "key": m.key,
                    "headers": jsonutil.dumps(m.headers).decode(),
                    "value": m.value,
                }
                for t, m in messages
            ],
        )


async def pending(engine: AsyncEngine, limit: int = 500) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(select(outbox).order_by(outbox.c.id).limit(limit)))


async def sent(engine: AsyncEngine, ids: Sequence[int]) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))


async def closed(conn: AsyncConnection, contract_ids: Sequence[str]) -> dict[str, set[str]]:
    """Each contract's closed periods. Their final statements stay in the database (read
    every batch, a long-lived contract's would be megabytes): see `final_statement`."""
    c = closed_periods.c
    rows = await conn.execute(
        select(c.contract_id, c.period).where(c.contract_id.in_(list(contract_ids)))
    )
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r.contract_id, set()).add(r.period)
    return found


async def final_statement(
    conn: AsyncConnection, contract_id: str, period: str
) -> dict[str, Any] | None:
    """The final statement of a closed period; None if it is not closed."""
    c = closed_periods.c
    text = await conn.scalar(
        select(c.statement).where(c.contract_id == contract_id, c.period == period)
    )
    return None if text is None else jsonutil.loads(text)


async def record_close(
    conn: AsyncConnection,
    contract_id: str,
    period: str,
    closed_at: Any,
    inputs: dict[str, Any],
    statement: dict[str, Any],
) -> None:
    await conn.execute(
        db.upsert(conn, closed_periods)
        .values(
            contract_id=contract_id,
            period=period,
            closed_at=closed_at,
            inputs=jsonutil.dumps(inputs).decode(),
            statement=jsonutil.dumps(statement).decode(),
        )
        .on_conflict_do_nothing()
    )


async def put_dispute(conn: AsyncConnection, dispute: dict[str, Any]) -> bool:
    result = await conn.execute(
        db.upsert(conn, disputes)
        .values(
            dispute_id=dispute["dispute_id"],
            contract_id=dispute["contract_id"],
            period=dispute["period"],
            line_id=dispute["line_id"],
            status=dispute["status"],
            body=jsonutil.dumps(dispute).decode(),
        )
        .on_conflict_do_nothing()
    )
    return bool(result.rowcount)


async def dispute(conn: AsyncConnection, dispute_id: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(disputes.c.body).where(disputes.c.dispute_id == dispute_id))
    ).first()
    return jsonutil.loads(row.body) if row else None


async def update_dispute(conn: AsyncConnection, dispute: dict[str, Any]) -> None:
    await conn.execute(
        update(disputes)
        .where(disputes.c.dispute_id == dispute["dispute_id"])
        .values(status=dispute["status"], body=jsonutil.dumps(dispute).decode())
    )


async def contract_disputes(
    conn: AsyncConnection, contract_id: str, period: str | None = None
) -> list[dict[str, Any]]:
    d = disputes.c
    query = select(d.body).where(d.contract_id == contract_id).order_by(d.dispute_id)
    if period is not None:
        query = query.where(and_(d.period == period))
    return [jsonutil.loads(r.body) for r in await conn.execute(query)]


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(journal))).scalar_one())
