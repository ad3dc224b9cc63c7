"""Token revocation: an admin revokes a token id (`jti`) on the ledger, which publishes
`token.revoked` on `slapay.tokens`. Every service follows that topic into its database and
into an in-memory set that `current_principal` checks on each request (401 once revoked).

Each process reads the whole topic with a consumer group of its own that never commits, so
every replica sees every revocation (a shared group would split the partitions between them);
what it saw is kept in its database, so a restart refuses those tokens before catching up.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.bus import Record
from shared.db import UtcDateTime
from shared.events import TOPIC_TOKENS, Envelope, TokenRevoked, make_event, utcnow
from shared.publishing import publish_events
from shared.retrying import retrying

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)
metadata = MetaData()
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(128), primary_key=True),
    Column("revoked_at", UtcDateTime, nullable=False),
)


class RevokedTokens:
    """The token ids this process refuses."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def __contains__(self, jti: object) -> bool:
        return jti in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, jtis: Iterable[str]) -> None:
        self._ids.update(jtis)


async def revoke(runtime: Runtime, jti: str, revoked_by: str) -> None:
    """Publish the revocation (raises `BusUnavailable`), then refuse the token here at once;
    the other services follow within their poll interval."""
    event = make_event(
        TokenRevoked(jti=jti, revoked_by=revoked_by), contract_id="", source="ledger"
    )
    await publish_events(runtime.bus, [event])
    runtime.revoked.add([jti])


async def follow_revocations(runtime: Runtime) -> None:
    """A worker of every service (see `build_app`): runs until cancelled, restarting after
    any failure of the bus or the database."""
    await retrying(functools.partial(_follow, runtime), what=f"following {TOPIC_TOKENS}")


async def _follow(runtime: Runtime) -> None:
    try:
        await db.create_schema(runtime.engine, metadata)
        async with runtime.engine.connect() as conn:
            rows = await conn.execute(select(revoked_tokens.c.jti))
            runtime.revoked.add(row.jti for row in rows)
    except (SQLAlchemyError, OSError) as exc:  # the topic alone will do; storing retries below
        log.warning("revoked tokens not loaded from the database: %s", exc)
    group = f"{runtime.service}.revocations.{uuid.uuid4().hex}"
    consumer = runtime.bus.consumer([TOPIC_TOKENS], group)
    try:
        await consumer.start()  # inside: stopped even if cancelled while joining the group
        while True:
            jtis = revoked_ids(await consumer.fetch(max_records=1000, timeout_s=0.5))
            fresh = [jti for jti in jtis if jti not in runtime.revoked]
            if fresh:
                runtime.revoked.add(fresh)
                await _store(runtime.engine, fresh)
    finally:
        await consumer.stop()


def revoked_ids(records: Sequence[Record]) -> list[str]:
    """The token ids in `token.revoked` records; anything else on the topic is skipped."""
    found = []
    for record in records:
        try:
            event = Envelope.from_json(record.value)
            payload = event.payload()
        except (ValidationError, ValueError) as exc:
            log.warning("not a revocation on %s: %s", TOPIC_TOKENS, str(exc)[:200])
            continue
        if isinstance(payload, TokenRevoked):
            found.append(payload.jti)
    return found


async def _store(engine: AsyncEngine, jtis: Sequence[str]) -> None:
    now = utcnow()
    statement = db.upsert(engine, revoked_tokens).values(
        [{"jti": j, "revoked_at": now} for j in jtis]
    )
    async with engine.begin() as conn:
        await conn.execute(statement.on_conflict_do_nothing(index_elements=["jti"]))
