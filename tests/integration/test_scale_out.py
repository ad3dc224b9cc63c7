"""Two ledger replicas in one consumer group on Kafka + Postgres share the contracts by
partition; one is killed mid-fold (the group rebalances, the survivor takes over what it
had read ahead but not committed). Every contract's journal still reaches the chain head a
one-process rebuild from the bus reaches: scaling out the fold changes no money."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.demo import demo_terms
from services.ledger import journal_store, store
from services.ledger.replay import replay
from shared import db
from shared.auth import issue_token
from shared.bus.factory import create_bus
from shared.core.journal import JournalEntry, chain_breaks
from shared.publishing import publish_events
from shared.settings import Settings
from tests import infra
from tests.integration.test_crash import (
    ROOT,
    eventually_true,
    folded,
    ledger_process,
    outbox_empty,
    wait_ready,
)
from tests.integration.test_crash import events as crash_events
from tests.system import SECRET

pytestmark = pytest.mark.integration
CONTRACTS = [f"scale-{i}" for i in range(6)]  # keys spread over the 3 partitions
ON_TIME, LATE = 6_000, 800


def events(contract_id: str, n: int, value: float, prefix: str) -> list:
    return crash_events(n, datetime(2026, 9, 2, tzinfo=UTC), value, prefix, contract_id)


async def test_two_ledger_replicas_reach_the_heads_one_process_reaches(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    admin_url = request.getfixturevalue("postgres_admin")
    url, name = await infra.create_database(admin_url)
    try:
        with infra.kafka_bootstrap() as bootstrap:
            settings = Settings(
                bus=f"kafka://{bootstrap}", database_url=url, data_dir=tmp_path, auth_secret=SECRET
            )
            await run_scenario(settings, tmp_path)
    finally:
        await infra.drop_database(admin_url, name)


async def run_scenario(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SLAPAY_BUS=settings.bus,
        SLAPAY_DATABASE_URL=str(settings.database_url),
        SLAPAY_DATA_DIR=str(tmp_path),
        SLAPAY_AUTH_SECRET=SECRET,
        SLAPAY_CONSUMER_SESSION_TIMEOUT_MS="1000",
        SLAPAY_PROVISIONAL_DEBOUNCE_S="1",
        SLAPAY_AUTOCLOSE_INTERVAL_S="3600",
        SLAPAY_REVIEWS_PEPPER="p" * 40,
    )
    engine = db.create_engine(str(settings.database_url))
    bus = create_bus(settings)
    await bus.start()
    admin = {"Authorization": f"Bearer {issue_token(SECRET, 'admin')}"}
    first, second = infra.free_port(), infra.free_port()
    total = len(CONTRACTS) * ON_TIME
    try:
        # One at a time: the first creates the schema and topics (two fresh processes racing
        # to create the same tables can kill one of them).
        with ledger_process(env, first):
            await wait_ready(first)
            with ledger_process(env, second) as doomed:
                await wait_ready(second)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first}") as client:
                    for contract_id in CONTRACTS:
                        terms = {**demo_terms("2026-09"), "contract_id": contract_id}
                        created = await client.post("/v1/contracts", json=terms, headers=admin)
                        assert created.status_code == 201, created.text
                for contract_id in CONTRACTS:
                    await publish_events(bus, events(contract_id, ON_TIME, 1.0, "ok"))
                await eventually_true(lambda: some_folded(engine))
                doomed.send_signal(signal.SIGKILL)  # mid-fold: its partitions move to the other
                assert await measurements(engine) < total, "the kill came after the fold"
                await eventually_true(lambda: folded(engine, total))
        with ledger_process(env, first), ledger_process(env, second):
            await wait_ready(first)
            await wait_ready(second)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{second}") as client:
                for contract_id in CONTRACTS:
                    closed = await client.post(
                        f"/v1/contracts/{contract_id}/periods/2026-09/close", headers=admin
                    )
                    assert closed.status_code == 202, closed.text
            await eventually_true(lambda: all_closed(engine))
            for contract_id in CONTRACTS:
                await publish_events(bus, events(contract_id, LATE, 0.0, "late"))
            await eventually_true(lambda: folded(engine, total + len(CONTRACTS) * LATE))
            await eventually_true(lambda: outbox_empty(engine))
        heads = {}
        for contract_id in CONTRACTS:
            entries = [e.document() for e in await journal_store.entries(engine, contract_id)]
            assert chain_breaks(map(JournalEntry.model_validate, entries)) == []
            assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
            assert any(e["kind"] == "adjustment" for e in entries), contract_id
            heads[contract_id] = entries[-1]["hash"]
        reference = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
        try:
            await db.create_schema(reference, store.metadata)
            outcomes = await replay(bus, reference)
        finally:
            await reference.dispose()
        assert {o.contract_id: o.replayed_head for o in outcomes} == heads
        assert all(o.matches for o in outcomes)
    finally:
        await bus.stop()
        await engine.dispose()


async def measurements(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(select(func.count()).select_from(store.measurements))
        return int(found.scalar_one())


async def some_folded(engine: AsyncEngine) -> bool:
    return await measurements(engine) > 0


async def all_closed(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(select(func.count()).select_from(journal_store.closed_periods))
        return bool(found.scalar_one() == len(CONTRACTS))
