"""Per-token rate limits: fixed windows counted in the database, so every replica agrees."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, String, Table, and_, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reviews.store import metadata
from shared import db

windows = Table(
    "reviews_rate_windows",
    metadata,
    Column("bucket", String(32), primary_key=True),
    Column("span_s", Integer, primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("hits", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Limit:
    span_s: int
    max_hits: int


async def hit(
    engine: AsyncEngine, bucket: str, limits: Sequence[Limit], now: datetime
) -> int | None:
    """Count one request for `bucket`; the seconds to wait if any window is over its limit."""
    moment = now.timestamp()
    waits = []
    async with engine.begin() as conn:
        for limit in limits:
            start = int(moment) // limit.span_s * limit.span_s
            statement = db.upsert(engine, windows).values(
                bucket=bucket, span_s=limit.span_s, window_start=start, hits=1
            )
            counted = statement.on_conflict_do_update(
                index_elements=[windows.c.bucket, windows.c.span_s, windows.c.window_start],
                set_={"hits": windows.c.hits + 1},
            ).returning(windows.c.hits)
            hits = (await conn.execute(counted)).scalar_one()
            if hits > limit.max_hits:
                waits.append(max(1, math.ceil(start + limit.span_s - moment)))
            await conn.execute(
                delete(windows).where(
                    and_(
                        windows.c.bucket == bucket,
                        windows.c.span_s == limit.span_s,
                        windows.c.window_start < start,
                    )
                )
            )
    return max(waits) if waits else None
