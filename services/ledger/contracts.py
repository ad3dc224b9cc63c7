"""Contract commands: agree terms (v1) and revisions; each version is an event on the bus."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import store
from services.ledger.consumer import apply_terms
from shared.bus import Bus
from shared.events import TermsAgreed, make_event
from shared.publishing import publish_events
from shared.terms import Terms


class ContractExists(Exception):
    pass


class UnknownContract(Exception):
    pass


class RevisionNotLater(Exception):
    pass


async def versions(engine: AsyncEngine, contract_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return (await store.terms_versions(conn, [contract_id])).get(contract_id, [])


async def agree(engine: AsyncEngine, bus: Bus, terms: Terms, source: str, *, revision: bool) -> int:
    """Publish `contract.terms.agreed`, then apply it here too so the reply reads its write."""
    existing = await versions(engine, terms.contract_id)
    if existing and not revision:
        raise ContractExists(terms.contract_id)
    if revision and not existing:
        raise UnknownContract(terms.contract_id)
    if revision and terms.effective_from <= existing[-1]["effective_from"]:
        raise RevisionNotLater(existing[-1]["effective_from"])
    version = len(existing) + 1
    document = terms.model_dump(mode="json")
    event = make_event(
        TermsAgreed(version=version, terms=document),
        contract_id=terms.contract_id,
        source=source,
    )
    await publish_events(bus, [event])
    async with engine.begin() as conn:
        touched = await apply_terms(conn, event)
        if touched is None and await store.version_event(conn, terms.contract_id, version) != str(
            event.event_id
        ):
            raise ContractExists(f"{terms.contract_id} v{version} was agreed concurrently")
        await store.mark_dirty(conn, touched or set())  # None: the fold applied ours first
    return version
