"""When parts fail: a paused broker, a database that refuses connections, a poison record.
Ingest never says 202 for what the bus did not acknowledge; consumers back off and resume;
nothing acknowledged is lost and nothing is applied twice."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services.ingest.measurements import MeasurementIn, event_id_of
from shared import jsonutil
from shared.bus import Message
from shared.events import TOPIC_DEADLETTER, TOPIC_MEASUREMENTS, MeasurementRecorded, make_event
from shared.publishing import publish_events
from shared.settings import SERVICES
from tests import infra
from tests.integration.seeded import agree, measurements, period_back, statement_events
from tests.system import System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT = "failures-co"
TIMEOUT_S = 2.0


def event_ids(batch: dict[str, Any]) -> set[str]:
    return {event_id_of(MeasurementIn.model_validate(m)) for m in batch["measurements"]}


async def folded(system: System) -> int:
    return await statement_events(system, CONTRACT, period_back(0))


async def test_a_paused_broker_gets_503_in_time_and_loses_nothing_acknowledged(
    tmp_path: Path, postgres_url: str
) -> None:
    with infra.tansu_process() as (bootstrap, broker):
        settings = make_settings(
            data_dir=tmp_path,
            bus=f"kafka://{bootstrap}",
            database_url=postgres_url,
            publish_timeout_s=TIMEOUT_S,
        )
        async with running_system(settings) as system:
            await agree(system, CONTRACT, period_back(0))
            agent = system.token("agent", [CONTRACT])
            before, during = (
                measurements(CONTRACT, 10, "before"),
                measurements(CONTRACT, 10, "during"),
            )
            assert (
                await system.ingest.post("/v1/measurements", json=before, headers=agent)
            ).status_code == 202
            broker.send_signal(signal.SIGSTOP)
            try:
                started = time.monotonic()
                refused = await system.ingest.post("/v1/measurements", json=during, headers=agent)
                waited = time.monotonic() - started
            finally:
                broker.send_signal(signal.SIGCONT)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert waited < TIMEOUT_S + 2
            retried = await eventually(  # as an agent does, after Retry-After
                lambda: system.ingest.post("/v1/measurements", json=during, headers=agent),
                lambda r: r.status_code == 202,
            )
            assert retried.json() == {"accepted": 10, "duplicates": 0}
            bus = system.apps["ingest"].state.runtime.bus
            on_bus = {
                jsonutil.loads(r.value)["event_id"] for r in await bus.read_all(TOPIC_MEASUREMENTS)
            }
            assert event_ids(before) | event_ids(during) <= on_bus
            await eventually(lambda: folded(system), lambda n: n == len(on_bus))
            assert len(on_bus) == 20


async def block(admin_url: str, database: str, allow: bool) -> None:
    """Make `database` refuse new connections and drop the open ones (or allow them again)."""
    parsed = make_url(admin_url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        await conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
    finally:
        await conn.close()


async def ready(system: System) -> dict[str, int]:
    return {s: (await system.clients[s].get("/readyz")).status_code for s in SERVICES}


@pytest.fixture
async def on_postgres(tmp_path: Path, postgres_admin: str) -> AsyncIterator[tuple[System, str]]:
    """The system on the embedded SQL log, its services' tables in a Postgres database."""
    url, name = await infra.create_database(postgres_admin)
    try:
        async with running_system(make_settings(data_dir=tmp_path, database_url=url)) as system:
            yield system, name
    finally:
        await block(postgres_admin, name, allow=True)
        await infra.drop_database(postgres_admin, name)


async def test_a_database_outage_is_not_ready_and_consumers_resume_exactly_once(
    on_postgres: tuple[System, str], postgres_admin: str
) -> None:
    system, database = on_postgres
    await agree(system, CONTRACT, period_back(0))
    agent = system.token("agent", [CONTRACT])
    first, second = measurements(CONTRACT, 10, "first"), measurements(CONTRACT, 10, "second")
    assert (
        await system.ingest.post("/v1/measurements", json=first, headers=agent)
    ).status_code == 202
    await eventually(lambda: folded(system), lambda n: n == 10)

    await block(postgres_admin, database, allow=False)
    await eventually(lambda: ready(system), lambda r: set(r.values()) == {503})
    refused = await system.ingest.post("/v1/measurements", json=second, headers=agent)
    assert refused.status_code == 503 and refused.headers["retry-after"].isdigit(), refused.text
    # What other producers put on the bus meanwhile: the second batch, and the first again.
    events = [
        make_event(
            MeasurementRecorded(kpi=m["kpi"], value=m["value"], measurement_id=m["measurement_id"]),
            contract_id=CONTRACT,
            source="test",
            occurred_at=MeasurementIn.model_validate(m).observed_at,
            producer_id=m["measurement_id"],
        )
        for m in second["measurements"] + first["measurements"]
    ]
    await publish_events(system.apps["ingest"].state.runtime.bus, events)
    await asyncio.sleep(1.5)  # the consumers fail and back off

    await block(postgres_admin, database, allow=True)
    await eventually(lambda: ready(system), lambda r: set(r.values()) == {200})
    await eventually(lambda: folded(system), lambda n: n == 20)
    again = await system.ingest.post("/v1/measurements", json=second, headers=agent)
    assert again.status_code == 202, again.text
    await asyncio.sleep(1)
    assert await folded(system) == 20


async def test_a_poison_record_is_parked_and_the_consumer_carries_on(system: System) -> None:
    await agree(system, CONTRACT, period_back(0))
    bus = system.apps["ingest"].state.runtime.bus
    poison = b"\xff\x00 not an event {"
    await bus.publish(TOPIC_MEASUREMENTS, [Message(CONTRACT, poison, {"type": "garbage"})])
    good = measurements(CONTRACT, 1, "after-poison")
    agent = system.token("agent", [CONTRACT])
    assert (
        await system.ingest.post("/v1/measurements", json=good, headers=agent)
    ).status_code == 202
    await eventually(lambda: folded(system), lambda n: n == 1)
    parked = [jsonutil.loads(r.value) for r in await bus.read_all(TOPIC_DEADLETTER)]
    assert any(p["topic"] == TOPIC_MEASUREMENTS and p["reason"] for p in parked), parked
