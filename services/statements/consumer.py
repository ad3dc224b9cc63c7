"""Bus edge of statements: statement snapshots, journal entries, terms versions and
disputes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.statements import store
from shared.consuming import envelopes, run_consumer
from shared.core.journal import JournalEntry
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    DisputeOpened,
    DisputeResolved,
    Envelope,
    JournalEntryPosted,
    StatementFinalized,
    StatementProvisional,
    TermsAgreed,
)
from shared.runtime import Runtime

GROUP = "statements"
SNAPSHOTS = {StatementProvisional.TYPE, StatementFinalized.TYPE}
log = logging.getLogger(__name__)


class Parties(BaseModel):
    """What `GET /v1/contracts` shows of a terms version."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    provider: str
    customer: str
    currency: str


async def journal_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_JOURNAL, TOPIC_CONTRACTS], GROUP)
    await run_consumer(
        runtime.bus,
        consumer,
        lambda delivered: apply_events(runtime.engine, envelopes(delivered)),
        isolation=runtime.isolation(GROUP),
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


async def apply_events(engine: AsyncEngine, events: Sequence[Envelope]) -> None:
    async with engine.begin() as conn:
        for event in events:
            await apply_event(conn, event)


async def apply_event(conn: AsyncConnection, event: Envelope) -> None:
    if event.type in SNAPSHOTS:
        breaches = event.data.get("ticket_breaches")
        await store.put_statement(conn, event.data["statement"], event.recorded_at, breaches)
    elif event.type == JournalEntryPosted.TYPE:
        entry = JournalEntry.published(event.data.get("entry"))
        if entry is None:
            # Not an entry the ledger could have written: the audit names it; nothing to serve.
            log.warning("an unreadable journal entry on slapay.journal: %s", event.event_id)
            return
        await store.put_entry(conn, entry, event.occurred_at)
    elif event.type == TermsAgreed.TYPE:
        agreed = event.payload()
        assert isinstance(agreed, TermsAgreed)
        try:
            parties = Parties.model_validate(agreed.terms)
        except ValidationError as exc:
            # Not terms the ledger agreed (it sets such a record aside itself): nothing to list.
            log.warning("unreadable terms on slapay.contracts: %s", str(exc)[:200])
            return
        await store.put_terms_version(conn, event.contract_id, agreed.version, parties.model_dump())
    elif event.type == DisputeOpened.TYPE:
        opened = {
            **event.data,
            "contract_id": event.contract_id,
            "status": "open",
            "opened_at": event.recorded_at.isoformat(),
        }
        if await store.get_dispute(conn, event.data["dispute_id"]) is None:
            await store.put_dispute(conn, opened)
    elif event.type == DisputeResolved.TYPE:
        dispute = await store.get_dispute(conn, event.data["dispute_id"])
        if dispute is not None and dispute["status"] == "open":
            resolution = {**event.data, "resolved_at": event.recorded_at.isoformat()}
            await store.put_dispute(
                conn, {**dispute, "status": event.data["decision"], "resolution": resolution}
            )
