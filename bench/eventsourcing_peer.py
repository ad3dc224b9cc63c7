"""The ledger fold beside the same fold written with the `eventsourcing` library (PyPI), the
peer a Python team would otherwise pick, on the same Postgres server, from the same Kafka
topic, in the same run.

slapay: the ledger's own fold worker (`bench.fold.ledger_fold`: fetch, decode, one
transaction per batch writing the measurement rows keyed by event id and the running
per-(contract, period, KPI) count/total/min/max, commit the group position).

eventsourcing, written the way its documentation builds a consumer of another system's
events: an `EventSourcedProjection` whose policy turns each measurement into a domain event
of a `PeriodKpis` aggregate — one aggregate per (contract, period), the consistency boundary
of a statement, so a stream stays a month long — holding the same count/total/min/max per
KPI. Each domain event is one row of its `<app>_events` table (the counterpart of the
ledger's `measurements` row). What was consumed is recorded as a `Tracking` (topic and
partition, next offset) in the same transaction as the events: the library's exactly-once
mechanism (the ledger keys rows by event id instead). One `process_event` per partition
per fetched batch: one transaction for up to 10,000 events, as the ledger does (the
by-the-book one transaction per upstream event was about ten times slower when tried).
Snapshots every 1,000 versions bound a restart's reload (a month's stream can hold a
million events); the library takes each from the aggregate re-read from the store, so the
fold is measured once more without snapshots to show that cost apart. A repository cache
without fast-forward (one writer) keeps the running aggregates in memory. Persistence:
`eventsourcing.postgres` (psycopg 3 with its C implementation, `psycopg[binary]`), each
fold in a fresh database of its own. Records are read with the same bus consumer and
validated with the same `decode` as the ledger's, so what differs is the fold and its
persistence. The library is synchronous: each batch runs in a worker thread while the
event loop reads and decodes the next batch, as the ledger's consumer does.

Both must reach the very same per-(contract, period, KPI) aggregates, or the scenario fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.core import (
    DISTRIBUTED,
    STALL_S,
    BenchError,
    Config,
    Rates,
    Scenario,
    Step,
    Unavailable,
    chunks,
    run_steps,
)
from bench.environment import broker, postgres_database, quiet_postgres
from bench.fold import SLAPAY, ledger_fold
from services.ledger import store
from shared import consuming
from shared.bus import Bus, Record
from shared.bus.factory import create_bus
from shared.consuming import Decoded, stepwise
from shared.core.periods import period_of
from shared.db import create_engine, create_schema
from shared.events import TOPIC_MEASUREMENTS
from shared.measured import DeliveredMeasurement, decode_measurements
from shared.settings import Settings

try:
    from eventsourcing.application import AggregateNotFoundError, ProcessingEvent
    from eventsourcing.domain import Aggregate, DomainEventProtocol, event
    from eventsourcing.persistence import Tracking
    from eventsourcing.projection import EventSourcedProjection
except ImportError:  # pragma: no cover - the scenario is skipped instead
    EVENTSOURCING: str | None = None
else:
    from importlib.metadata import version

    EVENTSOURCING = version("eventsourcing")

BATCH = consuming.BATCH  # records per fetch and transaction, as the ledger's own
SNAPSHOT_EVERY = 1_000
_PEER = f"eventsourcing {EVENTSOURCING}" if EVENTSOURCING else "eventsourcing"
PEER = f"{_PEER} fold, snapshots every {SNAPSHOT_EVERY:,}"
PEER_UNSNAPSHOTTED = f"{_PEER} fold, no snapshots"
Totals = dict[tuple[str, str, str], tuple[int, float, float, float]]
"""(contract, period, KPI) → (count, total, minimum, maximum)."""


@dataclass(frozen=True, slots=True)
class Measured:
    event_id: str
    contract_id: str
    period: str
    kpi: str
    value: float
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """The measurements of one partition in one fetch: the upstream 'event' processed."""

    measurements: list[Measured]


if EVENTSOURCING is not None:

    class PeriodKpis(Aggregate):
        """One contract's period: per KPI [count, total, minimum, maximum]."""

        @staticmethod
        def create_id(contract_id: str, period: str) -> uuid.UUID:
            return uuid.uuid5(uuid.NAMESPACE_URL, f"slapay-bench:{contract_id}:{period}")

        @event("Opened")
        def __init__(self, contract_id: str, period: str) -> None:
            self.contract_id = contract_id
            self.period = period
            self.kpis: dict[str, list[float]] = {}

        @event("Measured")
        def measure(self, event_id: str, kpi: str, value: float, occurred_at: datetime) -> None:
            state = self.kpis.get(kpi)
            if state is None:
                self.kpis[kpi] = [1, value, value, value]
            else:
                state[0] += 1
                state[1] += value
                state[2] = min(state[2], value)
                state[3] = max(state[3], value)

    class PeriodFold(EventSourcedProjection[uuid.UUID]):
        """Folds measurement batches into `PeriodKpis` aggregates."""

        snapshotting_intervals = {PeriodKpis: SNAPSHOT_EVERY}

        @singledispatchmethod
        def policy(self, domain_event: Any, processing_event: ProcessingEvent[uuid.UUID]) -> None:
            batch: Batch = domain_event
            touched: dict[uuid.UUID, PeriodKpis] = {}
            for m in batch.measurements:
                key = PeriodKpis.create_id(m.contract_id, m.period)
                aggregate = touched.get(key)
                if aggregate is None:
                    try:
                        aggregate = self.repository.get(key)
                    except AggregateNotFoundError:
                        aggregate = PeriodKpis(m.contract_id, m.period)
                    touched[key] = aggregate
                aggregate.measure(m.event_id, m.kpi, m.value, m.occurred_at)
            processing_event.collect_events(*touched.values())

        def totals(self, keys: Sequence[tuple[str, str]]) -> Totals:
            found: Totals = {}
            for contract_id, period in keys:
                aggregate: PeriodKpis = self.repository.get(
                    PeriodKpis.create_id(contract_id, period)
                )
                for kpi, (count, total, low, high) in aggregate.kpis.items():
                    found[(contract_id, period, kpi)] = (int(count), total, low, high)
            return found

    class UnsnapshottedPeriodFold(PeriodFold):
        """The same without snapshots: the library's cost of snapshotting, shown apart (a
        snapshot is taken from the aggregate re-read from the store, so every event is
        read back once)."""

        snapshotting_intervals = {}


def app_env(url: str) -> dict[str, str]:
    """eventsourcing's Postgres settings for the database at this SQLAlchemy URL."""
    parsed = make_url(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parsed.database or "",
        "POSTGRES_HOST": parsed.host or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "postgres",
        "POSTGRES_PASSWORD": parsed.password or "",
        "AGGREGATE_CACHE_MAXSIZE": "1000",
        "AGGREGATE_CACHE_FASTFORWARD": "n",
    }


def _measured(d: DeliveredMeasurement) -> Measured:
    """The peer adds doubles, as it always did (the bench's values are whole numbers, which
    doubles add exactly, so it reaches the ledger's exact totals)."""
    period = period_of(d.occurred_at, "UTC")
    return Measured(d.event_id, d.contract_id, period, d.kpi, float(d.value), d.occurred_at)


async def peer_fold(bus: Bus, url: str, total: int, snapshots: bool = True) -> tuple[float, Totals]:
    """Events per second through `PeriodFold` until `total` were recorded and committed;
    and the aggregates it reached."""
    app = (PeriodFold if snapshots else UnsnapshottedPeriodFold)(env=app_env(url))
    consumer = bus.consumer([TOPIC_MEASUREMENTS], f"bench-{type(app).__name__}")
    await consumer.start()
    keys: set[tuple[str, str]] = set()

    async def read_next() -> tuple[list[Record], Decoded]:
        records = await consumer.fetch(max_records=BATCH, timeout_s=0.5)
        return records, await stepwise(decode_measurements, records)  # as the ledger

    ahead = asyncio.create_task(read_next())
    try:
        done, started = 0, time.perf_counter()
        last = time.monotonic()
        while done < total:
            # the next batch is read while this one is processed, as the ledger's is
            records, decoded = await ahead
            ahead = asyncio.create_task(read_next())
            if not records:
                if time.monotonic() - last > STALL_S:
                    raise BenchError(f"eventsourcing fold stalled at {done:,}/{total:,}")
                continue
            if decoded.failures:
                raise BenchError(f"{len(decoded.failures)} undecodable records")
            by_partition: dict[int, list[DeliveredMeasurement]] = {}
            for d in decoded.delivered:
                assert isinstance(d, DeliveredMeasurement)
                by_partition.setdefault(d.partition, []).append(d)
            for partition, delivered in sorted(by_partition.items()):
                batch = Batch([_measured(d) for d in delivered])
                keys.update((m.contract_id, m.period) for m in batch.measurements)
                tracking = Tracking(f"{TOPIC_MEASUREMENTS}#{partition}", delivered[-1].offset + 1)
                # The upstream is Kafka, not another eventsourcing application: a batch
                # stands where its domain event would, and the policy unpacks it.
                upstream = cast("DomainEventProtocol[uuid.UUID]", batch)
                await asyncio.to_thread(app.process_event, upstream, tracking)
            await consumer.commit(records)
            done, last = done + len(records), time.monotonic()
        seconds = time.perf_counter() - started
        if done != total:
            raise BenchError(f"eventsourcing fold: expected {total:,} records, got {done:,}")
        stored = app.recorder.max_notification_id() or 0
        if stored != total + len(keys):
            raise BenchError(
                f"eventsourcing stored {stored:,} events, expected {total:,} + {len(keys)} opened"
            )
        return total / seconds, app.totals(sorted(keys))
    finally:
        ahead.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ahead
        await consumer.stop()
        app.close()


async def slapay_totals(engine: AsyncEngine) -> Totals:
    t = store.kpi_aggregates.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(t.contract_id, t.period, t.kpi, t.count, t.total, t.minimum, t.maximum)
        )
        return {(r[0], r[1], r[2]): (int(r[3]), float(r[4]), r[5], r[6]) for r in rows}


async def distributed_once(config: Config, turn: int) -> Rates:
    if EVENTSOURCING is None:
        raise Unavailable("the eventsourcing library is not installed: pip install eventsourcing")
    n = config.kafka_records
    messages = data.messages(data.items(n))
    reached: dict[str, Totals] = {}
    async with contextlib.AsyncExitStack() as stack:
        bootstrap = stack.enter_context(broker())
        url = await stack.enter_async_context(postgres_database())
        peer_urls = [await stack.enter_async_context(postgres_database()) for _ in range(2)]
        settings = Settings(bus=f"kafka://{bootstrap}", database_url=url)
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        bus = create_bus(settings)
        stack.push_async_callback(bus.stop)
        await bus.start()
        await create_schema(engine, store.metadata)
        for chunk in chunks(messages, config.fold_batch):
            await bus.publish(TOPIC_MEASUREMENTS, chunk)

        def peer(label: str, database: str, snapshots: bool) -> Step:
            async def step() -> float:
                rate, reached[label] = await peer_fold(bus, database, n, snapshots)
                return rate

            return label, step

        rates = await run_steps(
            [
                (SLAPAY, lambda: ledger_fold(settings, bus, engine, n)),
                peer(PEER, peer_urls[0], True),
                peer(PEER_UNSNAPSHOTTED, peer_urls[1], False),
            ],
            turn,
            before_each=lambda: quiet_postgres(url),
        )
        ours = await slapay_totals(engine)
    if sum(count for count, *_ in ours.values()) != n:
        raise BenchError(f"slapay folded {ours}, expected {n:,} measurements")
    for label, theirs in reached.items():
        if theirs != ours:
            raise BenchError(f"{label} reached {theirs}, the ledger {ours}")
    return rates


SCENARIOS = (
    Scenario(
        "eventsourcing-fold", DISTRIBUTED, SLAPAY, (PEER, PEER_UNSNAPSHOTTED), distributed_once
    ),
)
