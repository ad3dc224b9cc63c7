"""Provisional statements: while a period is open, publish a fresh snapshot when it changes.

Debounced: folds only mark a (contract, period) dirty, in the same transaction; this loop
publishes at most one snapshot per dirty period every `provisional_debounce_s`, so a burst
of 100k measurements yields a handful of snapshots, and a crash loses no mark.
"""

from __future__ import annotations

import asyncio
import logging

from services.ledger import store
from shared.events import StatementProvisional, make_event
from shared.payment import Observation, compute_statement
from shared.publishing import publish_events
from shared.runtime import Runtime
from shared.terms import Terms, terms_in_force, version_in_force

log = logging.getLogger(__name__)


async def provisional_loop(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(runtime.settings.provisional_debounce_s)
        try:
            await publish_dirty(runtime)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("publishing provisional statements failed; will retry")


async def publish_dirty(runtime: Runtime) -> int:
    """Publish one snapshot per dirty period; return how many were published."""
    published = 0
    for contract_id, period, marks in await store.dirty(runtime.engine):
        statement = await provisional_statement(runtime, contract_id, period)
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


async def provisional_statement(runtime: Runtime, contract_id: str, period: str) -> dict | None:
    async with runtime.engine.connect() as conn:
        versions = (await store.terms_versions(conn, [contract_id])).get(contract_id, [])
    terms_list = [Terms.model_validate(v) for v in versions]
    terms = terms_in_force(terms_list, period)
    if terms is None:
        return None
    version = version_in_force(terms_list, period) or 1
    rows = await store.period_measurements(runtime.engine, contract_id, period)
    observations = [Observation(r.event_id, r.kpi, r.value, r.occurred_at) for r in rows]
    statement = compute_statement(terms, period, observations, [], terms_version=version)
    return statement.model_dump(mode="json")
