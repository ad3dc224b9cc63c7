"""Webhooks, their durable delivery queue and the log of every attempt (statements database).

A delivery waits in the queue until its endpoint answers 2xx or the retry window ends. Per
endpoint and contract the queue is a lane, sent in bus order: only a lane's oldest pending
delivery is ever due, so a failing one holds the later ones. A sender claims a delivery by a
lease, so that replicas never send the same one at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.statements.store import metadata
from shared import db, jsonutil
from shared.db import UtcDateTime

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(36), primary_key=True),
    Column("url", Text, nullable=False),
    Column("types", Text, nullable=False),
    Column("contracts", Text, nullable=True),  # null: every contract (an admin's)
    Column("owner", String(200), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled", Text, nullable=True),  # why the endpoint asked to stop (410)
)
deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("webhook_id", String(36), nullable=False),
    Column("contract_id", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(12), nullable=False),  # pending, delivered, failed, cancelled
    Column("attempts", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("leased_until", UtcDateTime, nullable=True),
    Column("last_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("done_at", UtcDateTime, nullable=True),
    Index("ux_webhook_deliveries_event", "webhook_id", "event_id", unique=True),
    Index("ix_webhook_deliveries_lane", "webhook_id", "contract_id", "status", "id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)
attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", BigInteger, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    types: frozenset[str]
    contracts: frozenset[str] | None
    owner: str
    salt: str
    created_at: datetime
    disabled: str | None = None

    def wants(self, type_: str, contract_id: str) -> bool:
        return type_ in self.types and (self.contracts is None or contract_id in self.contracts)


@dataclass(frozen=True)
class Due:
    """A lane's oldest pending delivery, with what sending it needs."""

    id: int
    webhook_id: str
    event_id: str
    body: bytes
    attempts: int
    created_at: datetime
    url: str
    salt: str


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to; `status` is the delivery's state after it."""

    delivery_id: int
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    status: str
    next_attempt_at: datetime | None


def _webhook(row: Any) -> Webhook:
    contracts = None if row.contracts is None else frozenset(jsonutil.loads(row.contracts))
    return Webhook(
        row.webhook_id,
        row.url,
        frozenset(jsonutil.loads(row.types)),
        contracts,
        row.owner,
        row.salt,
        row.created_at,
        row.disabled,
    )


async def add(engine: AsyncEngine, hook: Webhook) -> None:
    contracts = None if hook.contracts is None else jsonutil.dumps(sorted(hook.contracts)).decode()
    async with engine.begin() as conn:
        await conn.execute(
            webhooks.insert().values(
                webhook_id=hook.webhook_id,
                url=hook.url,
                types=jsonutil.dumps(sorted(hook.types)).decode(),
                contracts=contracts,
                owner=hook.owner,
                salt=hook.salt,
                created_at=hook.created_at,
            )
        )


async def get(engine: AsyncEngine, webhook_id: str) -> Webhook | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id))
        ).first()
    return None if row is None else _webhook(row)


async def every(engine: AsyncEngine) -> list[Webhook]:
    """Every registered webhook, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(webhooks).order_by(webhooks.c.created_at))
    return [_webhook(row) for row in rows]


async def remove(engine: AsyncEngine, webhook_id: str) -> None:
    """The webhook, its queue and its log, at once: nothing more is sent to it."""
    d = deliveries.c
    async with engine.begin() as conn:
        ids = select(d.id).where(d.webhook_id == webhook_id).scalar_subquery()
        await conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
        await conn.execute(delete(deliveries).where(d.webhook_id == webhook_id))
        await conn.execute(delete(webhooks).where(webhooks.c.webhook_id == webhook_id))


async def active(conn: AsyncConnection) -> list[Webhook]:
    rows = await conn.execute(select(webhooks).where(webhooks.c.disabled.is_(None)))
    return [_webhook(row) for row in rows]


async def enqueue(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Queue deliveries in the given (bus) order; one already queued is left as it is (the
    consumer may read a batch again after a crash)."""
    for row in rows:
        await conn.execute(
            db.upsert(conn, deliveries)
            .values(**row, status="pending", attempts=0, next_attempt_at=row["created_at"])
            .on_conflict_do_nothing(index_elements=["webhook_id", "event_id"])
        )


async def due(engine: AsyncEngine, now: datetime, limit: int) -> list[Due]:
    """The oldest pending delivery of each lane, if it is due and nobody holds its lease."""
    d, e, w = deliveries.alias("d"), deliveries.alias("e"), webhooks.c
    earlier = (
        select(e.c.id)
        .where(
            e.c.webhook_id == d.c.webhook_id,
            e.c.contract_id == d.c.contract_id,
            e.c.status == "pending",
            e.c.id < d.c.id,
        )
        .exists()
    )
    query = (
        select(d.c.id, d.c.webhook_id, d.c.event_id, d.c.body, d.c.attempts, d.c.created_at)
        .add_columns(w.url, w.salt)
        .join(webhooks, w.webhook_id == d.c.webhook_id)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            or_(d.c.leased_until.is_(None), d.c.leased_until < now),
            w.disabled.is_(None),
            ~earlier,
        )
        .order_by(d.c.id)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = await conn.execute(query)
        return [Due(r[0], r[1], r[2], r[3].encode(), r[4], r[5], r[6], r[7]) for r in rows]


async def claim(engine: AsyncEngine, delivery_id: int, now: datetime, until: datetime) -> bool:
    """Take the delivery's lease; False if another sender holds it or it is done."""
    d = deliveries.c
    async with engine.begin() as conn:
        result = await conn.execute(
            update(deliveries)
            .where(
                d.id == delivery_id,
                d.status == "pending",
                or_(d.leased_until.is_(None), d.leased_until < now),
            )
            .values(leased_until=until)
        )
    return bool(result.rowcount)


async def release(engine: AsyncEngine, delivery_id: int) -> None:
    """Give the lease back without an attempt (the sender stopped before an answer)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(deliveries).where(deliveries.c.id == delivery_id).values(leased_until=None)
        )


async def record(engine: AsyncEngine, outcome: Outcome) -> None:
    """Log the attempt and move the delivery on, releasing its lease."""
    done = outcome.status != "pending"
    async with engine.begin() as conn:
        moved = await conn.execute(
            update(deliveries)
            .where(deliveries.c.id == outcome.delivery_id)
            .values(
                status=outcome.status,
                attempts=outcome.attempt,
                last_attempt_at=outcome.at,
                last_status_code=outcome.status_code,
                last_error=outcome.error,
                leased_until=None,
                next_attempt_at=outcome.next_attempt_at or outcome.at,
                done_at=outcome.at if done else None,
            )
        )
        if not moved.rowcount:  # the webhook was deleted meanwhile
            return
        await conn.execute(
            db.upsert(conn, attempts)
            .values(
                delivery_id=outcome.delivery_id,
                attempt=outcome.attempt,
                attempted_at=outcome.at,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
            .on_conflict_do_nothing()
        )


async def disable(engine: AsyncEngine, webhook_id: str, reason: str) -> None:
    """The endpoint asked to stop (410 Gone): nothing more is queued or sent to it."""
    async with engine.begin() as conn:
        await conn.execute(
            update(webhooks).where(webhooks.c.webhook_id == webhook_id).values(disabled=reason)
        )
        await conn.execute(
            update(deliveries)
            .where(and_(deliveries.c.webhook_id == webhook_id, deliveries.c.status == "pending"))
            .values(status="cancelled")
        )


async def log(engine: AsyncEngine, webhook_id: str, limit: int) -> list[dict[str, Any]]:
    """The webhook's newest deliveries, each with its attempts, oldest attempt first."""
    d, a = deliveries.c, attempts.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(deliveries)
                .where(d.webhook_id == webhook_id)
                .order_by(d.id.desc())
                .limit(limit)
            )
        ).all()
        tried = await conn.execute(
            select(attempts)
            .where(a.delivery_id.in_([r.id for r in rows]))
            .order_by(a.delivery_id, a.attempt)
        )
        by_delivery: dict[int, list[dict[str, Any]]] = {}
        for t in tried:
            by_delivery.setdefault(t.delivery_id, []).append(
                {
                    "attempt": t.attempt,
                    "at": t.attempted_at,
                    "status_code": t.status_code,
                    "error": t.error,
                    "duration_ms": t.duration_ms,
                }
            )
    return [
        {
            "delivery_id": r.id,
            "event_id": r.event_id,
            "type": r.type,
            "contract_id": r.contract_id,
            "status": r.status,
            "attempts": r.attempts,
            "created_at": r.created_at,
            "last_attempt_at": r.last_attempt_at,
            "next_attempt_at": r.next_attempt_at if r.status == "pending" else None,
            "last_status_code": r.last_status_code,
            "last_error": r.last_error,
            "done_at": r.done_at,
            "log": by_delivery.get(r.id, []),
        }
        for r in rows
    ]
