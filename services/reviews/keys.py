"""Per-reviewer data keys, kept (wrapped) only in the reviews database, and their destruction.

Erasure deletes every key of a pseudonym and the ciphertexts of the read model. On SQLite
the delete runs with `secure_delete` and the WAL is checkpointed, so no copy of a key stays
in the files; on Postgres the table is vacuumed (backups keep what they hold until they
expire: see docs/privacy.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import (
    Column,
    LargeBinary,
    String,
    Table,
    and_,
    delete,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reviews import crypto
from services.reviews.store import metadata, reviews
from shared.db import UtcDateTime

log = logging.getLogger(__name__)

data_keys = Table(
    "reviews_data_keys",
    metadata,
    Column("key_id", String(36), primary_key=True),
    Column("pseudonym", String(64), nullable=False, index=True),
    Column("contract_id", String(64), nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)


async def data_keys_for(
    engine: AsyncEngine, kek: bytes, contract_id: str, pseudonyms: Collection[str], now: datetime
) -> dict[str, tuple[str, bytes]]:
    """Each reviewer's current key as (key_id, key), created on first use or after an erasure."""
    k = data_keys.c
    wanted = sorted(set(pseudonyms))
    if not wanted:
        return {}
    async with engine.begin() as conn:
        result = await conn.execute(
            select(k.pseudonym, k.key_id, k.wrapped_key)
            .where(k.pseudonym.in_(wanted))
            .order_by(k.created_at, k.key_id)
        )
        held = {row.pseudonym: (row.key_id, row.wrapped_key) for row in result}  # newest wins
        found = {
            alias: (key_id, crypto.unwrap_key(kek, wrapped, key_id))
            for alias, (key_id, wrapped) in held.items()
        }
        created = {
            alias: (str(uuid.uuid4()), crypto.new_data_key())
            for alias in wanted
            if alias not in found
        }
        if created:
            await conn.execute(
                data_keys.insert(),
                [
                    {
                        "key_id": key_id,
                        "pseudonym": alias,
                        "contract_id": contract_id,
                        "wrapped_key": crypto.wrap_key(kek, key, key_id),
                        "created_at": now,
                    }
                    for alias, (key_id, key) in created.items()
                ],
            )
    return {**found, **created}


async def keys_by_id(engine: AsyncEngine, kek: bytes, key_ids: Collection[str]) -> dict[str, bytes]:
    """The keys that still exist among `key_ids` (destroyed ones are simply absent)."""
    if not key_ids:
        return {}
    k = data_keys.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(k.key_id, k.wrapped_key).where(k.key_id.in_(list(key_ids)))
        )
        return {row.key_id: crypto.unwrap_key(kek, row.wrapped_key, row.key_id) for row in result}


async def contract_of(engine: AsyncEngine, pseudonym: str) -> str | None:
    """The contract a pseudonym belongs to (pseudonyms are per contract), or None if unknown."""
    async with engine.connect() as conn:
        for table in (reviews, data_keys):
            found = await conn.execute(
                select(table.c.contract_id).where(table.c.pseudonym == pseudonym).limit(1)
            )
            contract_id = found.scalar_one_or_none()
            if contract_id is not None:
                return str(contract_id)
    return None


async def destroy(
    engine: AsyncEngine, pseudonym: str, created_before: datetime | None = None
) -> int:
    """Delete the pseudonym's keys (those created up to `created_before`, if given, so that a
    replayed erasure spares a reviewer who came back since) and the ciphertexts here that no
    key opens any more; returns how many keys went."""
    sqlite = engine.dialect.name == "sqlite"
    k = data_keys.c
    doomed = k.pseudonym == pseudonym
    if created_before is not None:
        doomed = and_(doomed, k.created_at <= created_before)
    async with engine.begin() as conn:
        if sqlite:
            await conn.execute(text("PRAGMA secure_delete = ON"))
        gone = await conn.execute(delete(data_keys).where(doomed))
        remaining = select(k.key_id).where(k.pseudonym == pseudonym)
        await conn.execute(
            update(reviews)
            .where(reviews.c.pseudonym == pseudonym)
            .where(or_(reviews.c.key_id.is_(None), reviews.c.key_id.not_in(remaining)))
            .values(comment_ciphertext=None, comment_nonce=None)
        )
    destroyed = int(gone.rowcount or 0)
    if destroyed:
        await _purge_remnants(engine, sqlite)
    return destroyed


async def _purge_remnants(engine: AsyncEngine, sqlite: bool) -> None:
    """Best effort: old page images of the deleted keys must not linger in the WAL or in free
    space. A failure is logged, never fatal: the keys are gone from the tables already."""
    statement = "PRAGMA wal_checkpoint(TRUNCATE)" if sqlite else f"VACUUM FULL {data_keys.name}"
    try:
        async with engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await autocommit.execute(text(statement))
            blocked = sqlite and bool((result.first() or (0,))[0])
    except DBAPIError as exc:
        log.warning("reviews: %s after an erasure failed: %s", statement, type(exc).__name__)
        return
    if blocked:
        log.warning("reviews: WAL checkpoint after an erasure was blocked; a later one clears it")
