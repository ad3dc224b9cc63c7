"""Ingest: `POST /v1/measurements` through a real `slapay serve ingest` process, beside the
raw append of the same envelopes to the same kind of bus (aiokafka acks=all, or the SQL log):

- `ingest`: batches of `Config.http_batch` (500), `Config.concurrency` requests in flight,
  as measurements per second;
- `ingest-big`: `BIG_BATCHES` batches of `BIG_BATCH` (10,000) one after another, as an agent
  backfilling would send them, as 1/p50 of a batch (so the ratio is the raw p50 over
  slapay's), with the p50s in milliseconds as rows of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from bench import data
from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    chunks,
    run_steps,
    timed,
)
from bench.environment import SECRET, broker, postgres_database, server
from shared import heap
from shared.auth import issue_token
from shared.bus import Message
from shared.bus.kafka import KafkaBus
from shared.bus.sqllog import SqlLogBus

SLAPAY = "slapay POST /v1/measurements"
RAW_KAFKA = "aiokafka produce acks=all"
RAW_LOG = "SqlLogBus.publish"
RAW_TOPIC = "bench.raw"
BIG_BATCH = 10_000
BIG_BATCHES = 15
SLAPAY_BIG = f"slapay POST /v1/measurements, batches of {BIG_BATCH:,} one at a time (1/p50 s)"
RAW_KAFKA_BIG = f"aiokafka produce of {BIG_BATCH:,} records, acks awaited (1/p50 s)"
RAW_LOG_BIG = f"SqlLogBus.publish of {BIG_BATCH:,} records (1/p50 s)"


async def post_all(base_url: str, bodies: list[tuple[bytes, int]], concurrency: int) -> float:
    """Measurements per second: every body posted, `concurrency` requests in flight, each
    answered 202 with every item accepted."""
    token = issue_token(SECRET, "agent", list(data.CONTRACTS))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=120, limits=limits
    ) as client:
        await _post(client, *data.request_bodies(data.items(1), 1)[0])
        pending = iter(bodies)

        async def worker() -> None:
            for body, count in pending:
                await _post(client, body, count)

        seconds = await timed(asyncio.gather(*(worker() for _ in range(concurrency))))
    return sum(count for _, count in bodies) / seconds


async def post_one_at_a_time(base_url: str, bodies: list[tuple[bytes, int]]) -> list[float]:
    """Seconds each body took, posted one after another, each answered 202 in full."""
    token = issue_token(SECRET, "agent", list(data.CONTRACTS))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        await _post(client, *data.request_bodies(data.items(1), 1)[0])
        took = []
        for body, count in bodies:
            start = time.perf_counter()
            await _post(client, body, count)
            took.append(time.perf_counter() - start)
    return took


async def kafka_batches(bootstrap: str, batches: list[list[Message]]) -> list[float]:
    """Seconds each batch took to send, every ack awaited, one batch after another."""
    producer = await _producer(bootstrap)
    try:
        took = []
        for batch in batches:
            start = time.perf_counter()
            futures = [
                await producer.send(
                    RAW_TOPIC,
                    value=m.value,
                    key=m.key.encode(),
                    headers=[(k, v.encode()) for k, v in m.headers.items()],
                )
                for m in batch
            ]
            await asyncio.gather(*futures)
            took.append(time.perf_counter() - start)
    finally:
        await producer.stop()
    return took


async def log_batches(url: str, batches: list[list[Message]]) -> list[float]:
    """Seconds each `SqlLogBus.publish` of a batch took, one after another."""
    bus = SqlLogBus(url)
    await bus.start()
    try:
        await bus.publish(RAW_TOPIC, batches[0][:1])
        took = []
        for batch in batches:
            start = time.perf_counter()
            await bus.publish(RAW_TOPIC, batch)
            took.append(time.perf_counter() - start)
    finally:
        await bus.stop()
    return took


def big_rates(label: str, raw_label: str, slapay: list[float], raw: list[float]) -> Rates:
    ours, theirs = statistics.median(slapay), statistics.median(raw)
    return {
        label: 1 / ours,
        raw_label: 1 / theirs,
        f"ms: p50 of a batch of {BIG_BATCH:,}, slapay (not a rate)": ours * 1000,
        f"ms: p50 of a batch of {BIG_BATCH:,}, raw (not a rate)": theirs * 1000,
    }


def big_work() -> tuple[list[tuple[bytes, int]], list[list[Message]]]:
    items = data.items(BIG_BATCH * BIG_BATCHES)
    messages = data.messages(items)
    return data.request_bodies(items, BIG_BATCH), [
        list(chunk) for chunk in chunks(messages, BIG_BATCH)
    ]


async def _producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer tuned like `KafkaBus`'s, started, on a topic created the way slapay creates
    its own."""
    creator = KafkaBus(bootstrap, topics=[RAW_TOPIC])
    await creator.start()
    await creator.stop()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        max_batch_size=1 << 20,
    )
    await producer.start()
    await producer.send_and_wait(RAW_TOPIC, b"warm-up", key=b"bench")
    return producer


async def _post(client: httpx.AsyncClient, body: bytes, count: int) -> None:
    response = await client.post("/v1/measurements", content=body)
    if response.status_code != 202 or response.json().get("accepted") != count:
        raise BenchError(f"ingest replied {response.status_code}: {response.text[:300]}")


async def kafka_produce(bootstrap: str, messages: list[Message]) -> float:
    """Records per second: all sent at once by a producer tuned like `KafkaBus`'s, every
    ack awaited; the topic is created the way slapay creates its own."""
    headers = [(k, v.encode()) for k, v in messages[0].headers.items()]
    records = [(m.key.encode(), m.value) for m in messages]
    producer = await _producer(bootstrap)
    try:

        async def produce_all() -> None:
            futures = [
                await producer.send(RAW_TOPIC, value=value, key=key, headers=headers)
                for key, value in records
            ]
            await asyncio.gather(*futures)

        seconds = await timed(produce_all())
    finally:
        await producer.stop()
    return len(records) / seconds


async def log_append(url: str, messages: list[Message], batch: int) -> float:
    """Records per second: `SqlLogBus.publish` of `batch` records at a time, one after another."""
    bus = SqlLogBus(url)
    await bus.start()
    try:
        await bus.publish(RAW_TOPIC, messages[:1])

        async def append_all() -> None:
            for chunk in chunks(messages, batch):
                await bus.publish(RAW_TOPIC, chunk)

        seconds = await timed(append_all())
    finally:
        await bus.stop()
    return len(messages) / seconds


@contextlib.asynccontextmanager
async def distributed_ingest() -> AsyncIterator[tuple[str, str]]:
    """A real `slapay serve ingest` on a fresh broker and database, the bench contracts
    agreed: its base URL, and the broker's address for the raw baseline."""
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="slapay-bench-") as tmp:
        async with postgres_database() as url:
            settings = {"bus": f"kafka://{bootstrap}", "database_url": url, "data_dir": tmp}
            await data.agree_contracts(settings)
            async with server("ingest", settings, Path(tmp)) as base_url:
                yield base_url, bootstrap


@contextlib.asynccontextmanager
async def embedded_ingest() -> AsyncIterator[tuple[str, str]]:
    """The same in embedded mode: its base URL, and an SQL log of its own for the baseline."""
    with tempfile.TemporaryDirectory(prefix="slapay-bench-") as tmp:
        root = Path(tmp)
        settings = {"bus": "sqlite", "data_dir": str(root / "ingest")}
        await data.agree_contracts(settings)
        async with server("ingest", settings, root) as base_url:
            yield base_url, f"sqlite+aiosqlite:///{root / 'raw' / 'bus.db'}"


async def distributed_once(config: Config, turn: int) -> Rates:
    n = config.kafka_records
    bodies = data.request_bodies(data.items(n), config.http_batch)
    messages = data.messages(data.items(n))
    async with distributed_ingest() as (base_url, bootstrap):
        return await run_steps(
            [
                (SLAPAY, lambda: post_all(base_url, bodies, config.concurrency)),
                (RAW_KAFKA, lambda: kafka_produce(bootstrap, messages)),
            ],
            turn,
        )


async def distributed_big_once(config: Config, turn: int) -> Rates:
    bodies, batches = big_work()
    async with distributed_ingest() as (base_url, bootstrap):
        heap.settle()  # as `run_steps` does before each step
        slapay = await post_one_at_a_time(base_url, bodies)
        heap.settle()
        raw = await kafka_batches(bootstrap, batches)
    return big_rates(SLAPAY_BIG, RAW_KAFKA_BIG, slapay, raw)


async def embedded_once(config: Config, turn: int) -> Rates:
    n = config.embedded_records
    bodies = data.request_bodies(data.items(n), config.http_batch)
    messages = data.messages(data.items(n))
    async with embedded_ingest() as (base_url, raw_url):
        return await run_steps(
            [
                (SLAPAY, lambda: post_all(base_url, bodies, config.concurrency)),
                (RAW_LOG, lambda: log_append(raw_url, messages, config.http_batch)),
            ],
            turn,
        )


async def embedded_big_once(config: Config, turn: int) -> Rates:
    bodies, batches = big_work()
    async with embedded_ingest() as (base_url, raw_url):
        heap.settle()
        slapay = await post_one_at_a_time(base_url, bodies)
        heap.settle()
        raw = await log_batches(raw_url, batches)
    return big_rates(SLAPAY_BIG, RAW_LOG_BIG, slapay, raw)


SCENARIOS = (
    Scenario("ingest", DISTRIBUTED, SLAPAY, (RAW_KAFKA,), distributed_once),
    Scenario("ingest", EMBEDDED, SLAPAY, (RAW_LOG,), embedded_once),
    Scenario("ingest-big", DISTRIBUTED, SLAPAY_BIG, (RAW_KAFKA_BIG,), distributed_big_once),
    Scenario("ingest-big", EMBEDDED, SLAPAY_BIG, (RAW_LOG_BIG,), embedded_big_once),
)
