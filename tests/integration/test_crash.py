"""kill -9 the ledger again and again while it folds and posts: nothing lost, nothing
applied twice, and the journal reaches the chain head a fault-free rebuild reaches."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from services.demo import demo_terms
from services.ledger import journal_store, store
from services.ledger.replay import replay
from shared import db
from shared.auth import issue_token
from shared.bus.factory import create_bus
from shared.core.journal import JournalEntry, chain_breaks
from shared.events import MeasurementRecorded, make_event
from shared.publishing import publish_events
from shared.settings import Settings
from tests import infra
from tests.system import SECRET

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "crash-test"
# `make test` streams 30k on-time events per bus; `make crash` runs the full 100k.
ON_TIME = int(os.environ.get("SLAPAY_CRASH_EVENTS", "30000"))
LATE, KILLS = 6_000, 10


@contextmanager
def ledger_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "ledger", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def wait_ready(port: int, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient() as client:
        while asyncio.get_running_loop().time() < deadline:
            try:
                if (
                    await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                ).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("ledger did not become ready")


def events(n: int, start: datetime, value: float, prefix: str, contract_id: str = CONTRACT) -> list:
    return [
        make_event(
            MeasurementRecorded(kpi="availability", value=value),
            contract_id=contract_id,
            source="crash-test",
            occurred_at=start + timedelta(seconds=i),
            producer_id=f"{prefix}-{i}",
        )
        for i in range(n)
    ]


@asynccontextmanager
async def environment(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Settings]:
    if mode == "embedded":
        yield Settings(data_dir=tmp_path, auth_secret=SECRET)
        return
    admin = request.getfixturevalue("postgres_admin")
    url, name = await infra.create_database(admin)
    try:
        with infra.kafka_bootstrap() as bootstrap:
            yield Settings(
                bus=f"kafka://{bootstrap}", database_url=url, data_dir=tmp_path, auth_secret=SECRET
            )
    finally:
        await infra.drop_database(admin, name)


@pytest.mark.parametrize("mode", ["embedded", "kafka+postgres"])
async def test_kill_nine_loses_nothing_and_doubles_nothing(
    mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(9)
    async with environment(mode, tmp_path, request) as settings:
        port = infra.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
        env.update(
            PYTHONPATH=str(ROOT),
            SLAPAY_BUS=settings.bus,
            SLAPAY_DATA_DIR=str(tmp_path),
            SLAPAY_AUTH_SECRET=SECRET,
            SLAPAY_CONSUMER_SESSION_TIMEOUT_MS="1000",
            SLAPAY_PROVISIONAL_DEBOUNCE_S="2",
            SLAPAY_AUTOCLOSE_INTERVAL_S="3600",
            SLAPAY_REVIEWS_PEPPER="p" * 40,
        )
        if settings.database_url:
            env["SLAPAY_DATABASE_URL"] = settings.database_url
        engine = db.create_engine(settings.database_url_for("ledger"))
        bus = create_bus(settings)
        await bus.start()
        admin = {"Authorization": f"Bearer {issue_token(SECRET, 'admin')}"}
        kills = 0

        async def crash_while(condition: object, at_least: int = KILLS // 2) -> None:
            """Kill -9 at random moments (at least `at_least` times) until `condition`."""
            nonlocal kills
            mine = 0
            while mine < at_least:
                with ledger_process(env, port) as process:
                    await wait_ready(port)
                    await asyncio.sleep(rng.uniform(0.5, 2.5))
                    process.send_signal(signal.SIGKILL)
                    kills, mine = kills + 1, mine + 1
            with ledger_process(env, port):
                await wait_ready(port)
                await eventually_true(condition)

        try:
            with ledger_process(env, port):
                await wait_ready(port)
                terms = {**demo_terms("2026-09"), "contract_id": CONTRACT}
                async with httpx.AsyncClient() as client:
                    created = await client.post(
                        f"http://127.0.0.1:{port}/v1/contracts", json=terms, headers=admin
                    )
                    assert created.status_code == 201, created.text
            september = datetime(2026, 9, 2, tzinfo=UTC)
            on_time = events(ON_TIME, september, 1.0, "ok")
            for start in range(0, ON_TIME, 5000):
                await publish_events(bus, on_time[start : start + 5000])
            await crash_while(lambda: folded(engine, ON_TIME))
            with ledger_process(env, port):
                await wait_ready(port)
                async with httpx.AsyncClient() as client:
                    closed = await client.post(
                        f"http://127.0.0.1:{port}/v1/contracts/{CONTRACT}/periods/2026-09/close",
                        headers=admin,
                    )
                    assert closed.status_code == 202, closed.text
                await eventually_true(lambda: closed_count(engine))
            await publish_events(bus, events(LATE, september, 0.0, "late"))
            await crash_while(lambda: folded(engine, ON_TIME + LATE))
            with ledger_process(env, port):
                await wait_ready(port)
                await eventually_true(lambda: folded(engine, ON_TIME + LATE))
                await eventually_true(lambda: outbox_empty(engine))
            assert kills >= KILLS
            entries = [e.document() for e in await journal_store.entries(engine, CONTRACT)]
            assert chain_breaks(map(JournalEntry.model_validate, entries)) == []
            assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
            # 0.999 and 0.99 (and, with 100k on time, not yet 0.95) are crossed on the way down
            assert len([e for e in entries if e["kind"] == "adjustment"]) >= 2
            reference = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
            try:
                await db.create_schema(reference, store.metadata)
                outcome = (await replay(bus, reference))[0]
            finally:
                await reference.dispose()
            assert outcome.matches and outcome.replayed_head == entries[-1]["hash"]
        finally:
            await bus.stop()
            await engine.dispose()


async def eventually_true(probe: object, timeout_s: float = 120) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await probe():  # type: ignore[operator]
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached")


async def folded(engine: object, n: int) -> bool:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        count = (
            await conn.execute(select(func.count()).select_from(store.measurements))
        ).scalar_one()
    assert count <= n, f"{count} measurements folded, only {n} exist"
    return bool(count == n)


async def closed_count(engine: object) -> bool:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return bool(
            (
                await conn.execute(select(func.count()).select_from(journal_store.closed_periods))
            ).scalar_one()
        )


async def outbox_empty(engine: object) -> bool:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return not (
            await conn.execute(select(func.count()).select_from(journal_store.outbox))
        ).scalar_one()
