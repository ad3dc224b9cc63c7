"""Ledger fold: the ledger's own fold worker over pre-published measurement envelopes,
beside raw reads of the same records (and, on Postgres, a raw COPY of the same rows).

The slapay side is the ledger's `fold_loop` worker itself (fetch, decode, apply in
one transaction, commit the group position), watched through `bench.probe.CountingBus`.
Joining the consumer group happens before the clock starts, for slapay and baselines alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    chunks,
    drain,
    run_steps,
    timed,
)
from bench.environment import SECRET, asyncpg_dsn, broker, postgres_database, quiet_postgres
from bench.probe import CountingBus
from services.ledger import store
from services.ledger.consumer import fold_worker
from shared.bus import Bus, Message
from shared.bus.factory import create_bus
from shared.db import create_engine, create_schema
from shared.events import TOPIC_MEASUREMENTS
from shared.runtime import Runtime
from shared.settings import Settings

SLAPAY = "slapay ledger fold"
RAW_KAFKA = "aiokafka consume"
RAW_COPY = "asyncpg COPY"
RAW_LOG = "SqlLogBus fetch"
COPY_TABLE = "bench_copy"
COPY_DDL = f"""
CREATE TABLE {COPY_TABLE} (
    event_id varchar(36) PRIMARY KEY, contract_id varchar(64) NOT NULL,
    period varchar(7) NOT NULL, kpi varchar(100) NOT NULL,
    value double precision NOT NULL, occurred_at timestamptz NOT NULL);
CREATE INDEX ix_{COPY_TABLE}_contract_period ON {COPY_TABLE} (contract_id, period);
"""


async def ledger_fold(settings: Settings, bus: Bus, engine: AsyncEngine, total: int) -> float:
    """Events per second through the ledger's own fold worker, until it has committed all."""
    probe = CountingBus(bus, total)
    worker = asyncio.create_task(
        fold_worker(None)(Runtime("ledger", settings, engine, probe, SECRET))
    )
    try:
        seconds = await probe.finished(worker)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    async with engine.connect() as conn:
        stored = await conn.scalar(select(func.count()).select_from(store.measurements))
    if stored != total:
        raise BenchError(f"the ledger holds {stored} measurements, expected {total}")
    return total / seconds


async def log_fetch(bus: Bus, total: int, batch: int) -> float:
    """Records per second read by a bus consumer of the measurements topic, nothing else done."""
    consumer = bus.consumer([TOPIC_MEASUREMENTS], "bench-raw")
    await consumer.start()

    async def step() -> int:
        return len(await consumer.fetch(max_records=batch, timeout_s=0.5))

    try:
        seconds = await timed(drain(step, total))
    finally:
        await consumer.stop()
    return total / seconds


async def kafka_consume(settings: Settings, total: int, batch: int) -> float:
    """Records per second read by a plain aiokafka group member configured like the ledger's."""
    consumer = AIOKafkaConsumer(
        TOPIC_MEASUREMENTS,
        bootstrap_servers=settings.kafka_bootstrap(),
        group_id="bench-raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=max(100, settings.consumer_session_timeout_ms // 5),
        max_poll_records=10_000,
    )
    await consumer.start()

    async def step() -> int:
        fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
        return sum(len(messages) for messages in fetched.values())

    try:
        seconds = await timed(drain(step, total))
    finally:
        await consumer.stop()
    return total / seconds


async def copy_rows(url: str, rows: list[data.CopyRow], batch: int) -> float:
    """Rows per second COPied into a table shaped like `measurements`, `batch` per COPY."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(COPY_DDL)

        async def copy_all() -> None:
            for chunk in chunks(rows, batch):
                await conn.copy_records_to_table(
                    COPY_TABLE, records=chunk, columns=list(data.COPY_COLUMNS)
                )

        seconds = await timed(copy_all())
    finally:
        await conn.close()
    return len(rows) / seconds


async def _prepare(bus: Bus, engine: AsyncEngine, messages: list[Message], batch: int) -> None:
    await bus.start()
    await create_schema(engine, store.metadata)
    for chunk in chunks(messages, batch):
        await bus.publish(TOPIC_MEASUREMENTS, chunk)


async def distributed_once(config: Config, turn: int) -> Rates:
    n, size = config.kafka_records, config.fold_batch
    items = data.items(n)
    messages, rows = data.messages(items), data.copy_rows(items)
    with broker() as bootstrap:
        async with postgres_database() as url:
            settings = Settings(bus=f"kafka://{bootstrap}", database_url=url)
            bus, engine = create_bus(settings), create_engine(url)
            try:
                await _prepare(bus, engine, messages, size)
                return await run_steps(
                    [
                        (SLAPAY, lambda: ledger_fold(settings, bus, engine, n)),
                        (RAW_KAFKA, lambda: kafka_consume(settings, n, size)),
                        (RAW_COPY, lambda: copy_rows(url, rows, size)),
                    ],
                    turn,
                    before_each=lambda: quiet_postgres(url),
                )
            finally:
                await bus.stop()
                await engine.dispose()


async def embedded_once(config: Config, turn: int) -> Rates:
    n, size = config.embedded_records, config.fold_batch
    messages = data.messages(data.items(n))
    with tempfile.TemporaryDirectory(prefix="slapay-bench-") as tmp:
        settings = Settings(bus="sqlite", database_url=None, data_dir=Path(tmp))
        bus = create_bus(settings)
        engine = create_engine(settings.database_url_for("ledger"))
        try:
            await _prepare(bus, engine, messages, size)
            return await run_steps(
                [
                    (SLAPAY, lambda: ledger_fold(settings, bus, engine, n)),
                    (RAW_LOG, lambda: log_fetch(bus, n, size)),
                ],
                turn,
            )
        finally:
            await bus.stop()
            await engine.dispose()


SCENARIOS = (
    Scenario("ledger-fold", DISTRIBUTED, SLAPAY, (RAW_KAFKA, RAW_COPY), distributed_once),
    Scenario("ledger-fold", EMBEDDED, SLAPAY, (RAW_LOG,), embedded_once),
)
