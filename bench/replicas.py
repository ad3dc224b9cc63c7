"""The ledger scaled out: the real service (`slapay serve ledger`) folding pre-published
measurements from Kafka into Postgres as one process, then as two replicas in one consumer
group (the topic's partitions split between them), each on a fresh broker and database.

The replicas start together; the rate is counted in the database, rows of `measurements`
per second from the moment every replica has applied some (read from their `/metrics`) to
the last, so process start-up and the group's joins and rebalances stay outside the clock
for both, and a replica that got no partition fails the run instead of halving it. Two
partitions: the eight bench contracts hash four to each, so each replica gets half the
work. The ratio is two replicas over one: what scaling out buys on this machine, where both
replicas, Postgres and the broker share its two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.core import (
    DISTRIBUTED,
    STALL_S,
    BenchError,
    Config,
    Rates,
    Scenario,
    progress,
    run_steps,
)
from bench.environment import broker, postgres_database, server
from bench.fold import _prepare
from services.ledger import store
from shared.bus.factory import create_bus
from shared.db import create_engine
from shared.events import MeasurementRecorded
from shared.settings import Settings

PARTITIONS = 2
"""One each for two replicas, and the bench contracts split evenly between them."""
SCALE = 3
"""Events per repeat, in `--records`: the clock starts once the group has settled, and at
one `--records` (100k by default) a fold of 65k events/s a process had done half of them
before the second replica joined, which fails the run (2026-11-29)."""
TWO = f"2 ledger replicas (processes), {SCALE}x the records"
ONE = f"1 ledger process, {SCALE}x the records"


async def folded_by(client: httpx.AsyncClient) -> float:
    """Measurements a ledger process has applied, from its `/metrics`."""
    text = (await client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "slapay_consumer_events_total"
        and sample.labels.get("group") == "ledger"
        and sample.labels.get("type") == MeasurementRecorded.TYPE
    )


async def steady_rate(
    engine: AsyncEngine, replicas: list[str], total: int, poll_s: float = 0.05
) -> float:
    """Measurement rows per second while every replica folds: from the first moment each
    has applied some (the group has settled: joins and rebalances are behind it) to the
    `total`-th row. Fails if a replica did less than a quarter of its share, or if the
    group settled so late that less than half the events were left to measure."""

    async def count() -> int:
        async with engine.connect() as conn:
            found = await conn.scalar(select(func.count()).select_from(store.measurements))
            return int(found or 0)

    clients = [httpx.AsyncClient(base_url=url, timeout=5) for url in replicas]
    try:
        first, started, seen, last_change = -1, 0.0, 0, time.monotonic()
        while seen < total:
            await asyncio.sleep(poll_s)
            now, current = time.monotonic(), await count()
            if current != seen:
                last_change = now
            elif now - last_change > STALL_S:
                raise BenchError(f"the ledger stalled at {current:,}/{total:,} measurements")
            seen = current
            if first < 0 and all([await folded_by(c) for c in clients]):
                first, started = current, time.perf_counter()
        ended = time.perf_counter()
        shares = [await folded_by(c) for c in clients]
    finally:
        for client in clients:
            await client.aclose()
    if seen != total or first < 0 or total - first < total // 2:
        raise BenchError(f"{seen:,}/{total:,} measurements; the group settled at {first:,}")
    if min(shares) < total / len(replicas) / 4:
        raise BenchError(f"the replicas' shares of {total:,} events were {shares}")
    progress(f"  {len(replicas)} ledger process(es): shares {[int(x) for x in shares]}")
    return (total - first) / (ended - started)


async def fold_with(replicas: int, items: list[data.Item], batch: int) -> float:
    with broker() as bootstrap:
        async with postgres_database() as url:
            settings = Settings(
                bus=f"kafka://{bootstrap}", database_url=url, kafka_partitions=PARTITIONS
            )
            bus, engine = create_bus(settings), create_engine(url)
            try:
                await _prepare(bus, engine, data.messages(items), batch)
                with tempfile.TemporaryDirectory(prefix="slapay-bench-") as tmp:
                    env = {
                        "bus": settings.bus,
                        "database_url": url,
                        "data_dir": tmp,
                        "kafka_partitions": str(PARTITIONS),
                        "consumer_session_timeout_ms": "2000",
                        "reviews_pepper": "p" * 40,
                    }
                    async with contextlib.AsyncExitStack() as stack:
                        urls = await asyncio.gather(
                            *(
                                stack.enter_async_context(
                                    server("ledger", env, Path(tmp), f"ledger-{i}")
                                )
                                for i in range(replicas)
                            )
                        )
                        return await steady_rate(engine, list(urls), len(items))
            finally:
                await bus.stop()
                await engine.dispose()


async def distributed_once(config: Config, turn: int) -> Rates:
    items = data.items(SCALE * config.kafka_records)
    return await run_steps(
        [
            (TWO, lambda: fold_with(2, items, config.fold_batch)),
            (ONE, lambda: fold_with(1, items, config.fold_batch)),
        ],
        turn,
    )


SCENARIOS = (Scenario("ledger-replicas", DISTRIBUTED, TWO, (ONE,), distributed_once),)
