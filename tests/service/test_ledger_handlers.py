"""The ledger's use cases with a fake bus and a throwaway SQLite: what each publishes, what
the books refuse and how, and that nothing is kept when the bus does not take the event.
The fold is driven by hand (`apply_delivered` over what the fake bus holds)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo import demo_terms
from services.ledger import handlers, journal_store, store
from services.ledger.fold.apply import apply_delivered
from shared import db, signing
from shared.bus import BusUnavailable
from shared.core.terms import Terms
from shared.events import TOPIC_CONTRACTS, DisputeResolved, PeriodCloseRequested, TermsAgreed
from shared.measured import decode_measurements
from tests.fakes import InMemoryBus

CONTRACT = "acme-2026"
NOW = datetime(2026, 11, 15, tzinfo=UTC)
KEYRING = signing.Keyring.of(Ed25519PrivateKey.generate())


def terms(effective_from: str = "2026-09", **changes: Any) -> Terms:
    document = copy.deepcopy(demo_terms(effective_from))
    document.update(contract_id=CONTRACT, **changes)
    return Terms.model_validate(document)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}")
    await db.create_schema(engine, store.metadata)
    yield engine
    await engine.dispose()


async def fold(engine: AsyncEngine, bus: InMemoryBus) -> None:
    """Apply everything on the contracts topic, as the fold would."""
    await apply_delivered(
        engine, decode_measurements(bus.topics[TOPIC_CONTRACTS]).delivered, keyring=KEYRING
    )


def types(bus: InMemoryBus) -> list[str]:
    return [r.headers["type"] for r in bus.topics[TOPIC_CONTRACTS]]


async def refused(step: Any) -> handlers.Refused:
    with pytest.raises(handlers.Refused) as caught:
        await step
    return caught.value


async def test_terms_are_agreed_once_and_revised_only_from_a_later_month(
    engine: AsyncEngine,
) -> None:
    bus = InMemoryBus()
    assert await handlers.agree(engine, bus, terms(), "admin:a", revision=False) == 1
    assert types(bus) == [TermsAgreed.TYPE]
    assert [v["effective_from"] for v in await handlers.versions(engine, CONTRACT)] == ["2026-09"]

    again = await refused(handlers.agree(engine, bus, terms(), "admin:a", revision=False))
    assert (again.status, again.title) == (409, "Contract exists")
    early = await refused(handlers.agree(engine, bus, terms("2026-09"), "admin:a", revision=True))
    assert (early.status, early.field) == (422, "effective_from")
    assert await handlers.agree(engine, bus, terms("2026-11"), "admin:a", revision=True) == 2
    assert types(bus) == [TermsAgreed.TYPE, TermsAgreed.TYPE]  # nothing refused was published


async def test_nothing_is_kept_when_the_bus_does_not_take_the_terms(engine: AsyncEngine) -> None:
    bus = InMemoryBus()
    bus.down = True
    with pytest.raises(BusUnavailable):
        await handlers.agree(engine, bus, terms(), "admin:a", revision=False)
    assert await handlers.versions(engine, CONTRACT) == []


async def test_a_close_is_requested_only_for_an_ended_open_period(engine: AsyncEngine) -> None:
    bus = InMemoryBus()
    unknown = await refused(handlers.request_close(engine, bus, CONTRACT, "2026-09", "x", NOW))
    assert unknown.status == 404
    await handlers.agree(engine, bus, terms(), "admin:a", revision=False)
    running = await refused(handlers.request_close(engine, bus, CONTRACT, "2026-11", "x", NOW))
    assert (running.status, running.title) == (422, "Period has not ended")
    before = await refused(handlers.request_close(engine, bus, CONTRACT, "2026-08", "x", NOW))
    assert before.title == "No terms in force"

    await handlers.request_close(engine, bus, CONTRACT, "2026-09", "provider:p", NOW)
    assert types(bus)[-1] == PeriodCloseRequested.TYPE
    await fold(engine, bus)
    closed = await refused(handlers.request_close(engine, bus, CONTRACT, "2026-09", "x", NOW))
    assert (closed.status, closed.title) == (409, "Period already closed")
    async with engine.connect() as conn:
        final = await journal_store.final_statement(conn, CONTRACT, "2026-09")
    assert final is not None and KEYRING.verify(final) == KEYRING.active  # the fold's key


async def test_disputes_need_a_final_line_and_an_amount_to_be_accepted(
    engine: AsyncEngine,
) -> None:
    bus = InMemoryBus()
    await handlers.agree(engine, bus, terms(), "admin:a", revision=False)
    line = f"{CONTRACT}:2026-09:base_fee:"
    open_ = await refused(
        handlers.open_dispute(engine, bus, CONTRACT, "2026-09", line, "why", [], "customer:c")
    )
    assert (open_.status, open_.title) == (409, "No final statement")
    await handlers.request_close(engine, bus, CONTRACT, "2026-09", "admin:a", NOW)
    await fold(engine, bus)
    missing = await refused(
        handlers.open_dispute(engine, bus, CONTRACT, "2026-09", "no-line", "why", [], "c")
    )
    assert missing.title == "No such line"
    dispute_id = await handlers.open_dispute(
        engine, bus, CONTRACT, "2026-09", line, "why", [], "customer:c"
    )
    assert [d["dispute_id"] for d in await handlers.disputes(engine, CONTRACT)] == [dispute_id]

    for amount, title in ((None, "Amount required"), ("lots", "Invalid amount"), ("1.001", None)):
        refusal = await refused(
            handlers.resolve_dispute(engine, bus, CONTRACT, dispute_id, "accepted", amount, "")
        )
        assert (refusal.status, refusal.field) == (422, "amount")
        assert title is None or refusal.title == title
    ghost = await refused(
        handlers.resolve_dispute(engine, bus, CONTRACT, "nope", "rejected", None, "")
    )
    assert ghost.status == 404
    await handlers.resolve_dispute(engine, bus, CONTRACT, dispute_id, "accepted", "-12.50", "ok")
    assert types(bus)[-1] == DisputeResolved.TYPE
    await fold(engine, bus)
    settled = await refused(
        handlers.resolve_dispute(engine, bus, CONTRACT, dispute_id, "rejected", None, "")
    )
    assert (settled.status, settled.title) == (409, "Dispute already resolved")
