"""Bus edge of statements: keep the latest snapshot of every statement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.statements import store
from shared.events import Envelope, StatementFinalized, StatementProvisional

GROUP = "statements"
SNAPSHOTS = {StatementProvisional.TYPE, StatementFinalized.TYPE}


async def apply_events(engine: AsyncEngine, events: Sequence[Envelope]) -> None:
    async with engine.begin() as conn:
        for event in events:
            if event.type in SNAPSHOTS:
                await store.put_statement(conn, event.data["statement"], event.recorded_at)
