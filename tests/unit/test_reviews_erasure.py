"""Crypto-shredding and rate windows on a real SQLite file (services/reviews/keys.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reviews import crypto, keys, ratelimit, store
from shared import db

KEK = crypto.key_encryption_key(b"k" * 32)
T0 = datetime(2026, 10, 1, tzinfo=UTC)
ALICE, BOB = "a" * 64, "b" * 64


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reviews.db'}")
    await db.create_schema(engine, store.metadata)
    try:
        yield engine
    finally:
        await engine.dispose()


def row(review_id: str, alias: str, key_id: str, sealed: crypto.Sealed) -> store.ReviewRow:
    return store.ReviewRow(
        review_id=review_id,
        contract_id="acme-2026",
        period="2026-10",
        pseudonym=alias,
        rating=4,
        dimensions={},
        sealed=sealed,
        key_id=key_id,
        submitter=None,
        source="api",
        flags=(),
        occurred_at=T0,
    )


async def seal_for(
    engine: AsyncEngine, alias: str, review_id: str, text: str
) -> tuple[str, crypto.Sealed]:
    (key_id, key) = (await keys.data_keys_for(engine, KEK, "acme-2026", [alias], T0))[alias]
    sealed = crypto.seal(key, text, crypto.comment_context("acme-2026", alias, review_id))
    async with engine.begin() as conn:
        await store.put_reviews(conn, [row(review_id, alias, key_id, sealed)])
    return key_id, sealed


async def test_one_key_per_reviewer_is_reused(engine: AsyncEngine) -> None:
    first = await keys.data_keys_for(engine, KEK, "acme-2026", [ALICE, BOB], T0)
    again = await keys.data_keys_for(engine, KEK, "acme-2026", [ALICE], T0)
    assert again[ALICE] == first[ALICE] and first[ALICE] != first[BOB]
    assert await keys.contract_of(engine, ALICE) == "acme-2026"
    assert await keys.contract_of(engine, "c" * 64) is None


def files_in(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


async def test_erasure_leaves_no_key_and_no_readable_comment(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    key_id, sealed = await seal_for(engine, ALICE, "r1", "alice's words")
    await seal_for(engine, BOB, "r2", "bob's words")
    async with engine.connect() as conn:
        wrapped = (
            await conn.execute(
                select(keys.data_keys.c.wrapped_key).where(keys.data_keys.c.key_id == key_id)
            )
        ).scalar_one()
    assert await keys.destroy(engine, ALICE) == 1
    assert await keys.keys_by_id(engine, KEK, [key_id]) == {}
    left = await store.sealed_comments(engine, ["r1", "r2"])
    assert [c.review_id for c in left] == ["r2"]
    remaining = await keys.keys_by_id(engine, KEK, [c.key_id for c in left])
    for key in remaining.values():
        with pytest.raises(crypto.Unreadable):
            crypto.open_sealed(key, sealed, crypto.comment_context("acme-2026", ALICE, "r1"))
    for name, content in files_in(tmp_path).items():
        assert wrapped not in content, f"the destroyed key lingers in {name}"
        assert sealed.ciphertext.encode() not in content
    assert len(await store.period_reviews(engine, "acme-2026", "2026-10")) == 2
    assert await keys.destroy(engine, ALICE) == 0


async def test_a_replayed_erasure_spares_a_reviewer_who_came_back(engine: AsyncEngine) -> None:
    await seal_for(engine, ALICE, "r1", "before")
    erased_at = T0 + timedelta(seconds=1)
    await keys.destroy(engine, ALICE)
    later = T0 + timedelta(days=1)
    (new_key, _) = (await keys.data_keys_for(engine, KEK, "acme-2026", [ALICE], later))[ALICE]
    assert await keys.destroy(engine, ALICE, created_before=erased_at) == 0
    assert list(await keys.keys_by_id(engine, KEK, [new_key])) == [new_key]


async def test_rate_windows_count_per_bucket_and_say_how_long_to_wait(engine: AsyncEngine) -> None:
    limits = [ratelimit.Limit(60, 2), ratelimit.Limit(86_400, 3)]
    at = T0 + timedelta(seconds=15)
    assert await ratelimit.hit(engine, "t1", limits, at) is None
    assert await ratelimit.hit(engine, "t1", limits, at) is None
    assert await ratelimit.hit(engine, "t1", limits, at) == 45
    assert await ratelimit.hit(engine, "t2", limits, at) is None
    next_minute = T0 + timedelta(seconds=61)
    wait = await ratelimit.hit(engine, "t1", limits, next_minute)
    assert wait == 86_400 - 61
