"""Provisional statements: while a period is open, publish a fresh snapshot when it changes.

Debounced: folds only mark a (contract, period) dirty, in the same transaction; this loop
publishes at most one snapshot per dirty period every `provisional_debounce_s`, so a burst
of 100k measurements yields a handful of snapshots, and a crash loses no mark.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.ledger import journal_store, store
from services.ledger.book import (
    RunningStates,
    computed_statement,
    open_book,
    running_statement,
)
from services.ledger.domain import posting
from shared.events import StatementProvisional, make_event
from shared.publishing import publish_events
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def provisional_loop(runtime: Runtime) -> None:
    running = RunningStates()
    while True:
        await asyncio.sleep(runtime.settings.provisional_debounce_s)
        try:
            await publish_dirty(runtime, running)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publishing provisional statements failed; will retry")


async def publish_dirty(runtime: Runtime, running: RunningStates | None = None) -> int:
    """Publish one snapshot per dirty open period; return how many were published."""
    published = 0
    for contract_id, period, marks in await store.dirty(runtime.engine):
        with runtime.telemetry.handoff.resume((contract_id, period), "ledger.provisional"):
            statement = await provisional_statement(runtime, contract_id, period, running)
            if statement is not None:
                event = make_event(
                    StatementProvisional(statement=statement),
                    contract_id=contract_id,
                    source="ledger",
                )
                await publish_events(runtime.bus, [event])
                published += 1
        await store.clear_dirty(runtime.engine, contract_id, period, marks)
    return published


async def provisional_statement(
    runtime: Runtime, contract_id: str, period: str, running: RunningStates | None = None
) -> dict[str, Any] | None:
    """The open period's computed lines plus adjustments posted into it; None once closed."""
    async with runtime.engine.connect() as conn:
        book = await open_book(conn, contract_id)
        if period in book.closed:
            if running is not None:
                running.forget(contract_id, period)
            return None
        computed = (
            await computed_statement(conn, book, period)
            if running is None
            else await running_statement(conn, book, period, running)
        )
        if computed is None:
            return None
        posted_into = await journal_store.entries(conn, contract_id, period)
    adjustments = [e for e in posted_into if e["kind"] == posting.ADJUSTMENT]
    statement = posting.compose(computed, adjustments, status="provisional", entries=adjustments)
    return statement.model_dump(mode="json")
