"""One contract's live history on a bus, made by the ledger's own code, for the replay and
audit scenarios: its terms, N measurements and a close request on the bus, folded by
`apply_delivered` in bus order (what the fold worker does, without the consumer group),
and the journal entries the close posted relayed from the outbox onto `slapay.journal`.

The measurements are the envelopes ingest would publish (its own builder, `data.messages`)
for one contract and one ended month; the close comes only after every measurement was
folded, so the final statement covers all N.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.core import DISTRIBUTED, BenchError, chunks, loop_stalls, progress
from bench.environment import SECRET, broker, postgres_database
from services.demo import demo_terms
from services.ledger import journal_store, store
from services.ledger.fold.apply import apply_delivered
from services.ledger.workers import relay_outbox
from shared import consuming
from shared.bus import Bus, Message
from shared.bus.factory import create_bus
from shared.consuming import decode
from shared.core.journal import chain_breaks
from shared.core.terms import Terms
from shared.db import create_engine, create_schema
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    PeriodCloseRequested,
    TermsAgreed,
    make_event,
)
from shared.measured import decode_measurements
from shared.publishing import publish_events
from shared.runtime import Runtime
from shared.settings import Settings

CONTRACT = "bench-history"
PERIOD = "2026-10"
PUBLISH_BATCH = 10_000
FOLD_BATCH = consuming.BATCH
"""Events per `apply_delivered` transaction while building: the fold worker's fetch size,
and replay's batch."""
TOPICS = (TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_REVIEWS, TOPIC_JOURNAL)
"""What `replay` and `read_history` read: the raw baselines read the same four topics."""
RAW_READ = "bus.read_all of the 4 topics"


@dataclass(frozen=True)
class Built:
    """What is on the bus once the history is built."""

    measurements: int
    bus_records: int
    """Records on the four topics replay and audit read."""
    entries: int
    head: str
    fold_s: float
    """Seconds the in-process fold of terms and measurements took (read_all, decode,
    apply_delivered), the close excluded."""


def measurement_messages(n: int, contract: str = CONTRACT) -> list[Message]:
    """N `sla.measurement.recorded` envelopes for the contract, spread over the period, two
    KPIs, built by ingest's own builder; one availability sample in 1,999 fails."""
    items = [
        {
            "measurement_id": f"m-{i}",
            "contract_id": contract,
            "kpi": data.KPIS[i % 2],
            "value": float(40 + (i * 7919) % 400) if i % 2 else float(i % 1999 != 0),
            "observed_at": data.instant(i, n, days=30),
            "labels": {"probe": f"probe-eu-{i % 4}"},
        }
        for i in range(n)
    ]
    return data.messages(items)


async def build(
    settings: Settings,
    bus: Bus,
    engine: AsyncEngine,
    messages: Sequence[Message],
    contract: str = CONTRACT,
    beside_others: bool = False,
) -> Built:
    """Publish terms and measurements, fold them, publish a close request, fold it, relay
    the journal; check the live chain. `bus` started, `engine` empty; `beside_others`: the
    bus and `engine` hold other contracts too, and only this one's records are folded (read
    by its key, not the whole topics as the fold worker reads them)."""
    key = contract if beside_others else None
    await create_schema(engine, store.metadata)
    terms = Terms.model_validate({**demo_terms(PERIOD), "contract_id": contract})
    agreed = make_event(
        TermsAgreed(version=1, terms=terms.model_dump(mode="json")),
        contract_id=contract,
        source="bench",
        producer_id="terms:v1",
    )
    clock = time.perf_counter()
    await publish_events(bus, [agreed])
    for chunk in chunks(messages, PUBLISH_BATCH):
        await bus.publish(TOPIC_MEASUREMENTS, chunk)
    published = time.perf_counter()
    await _fold(bus, engine, TOPIC_CONTRACTS, key)
    await _fold(bus, engine, TOPIC_MEASUREMENTS, key)
    folded = time.perf_counter()
    close = make_event(
        PeriodCloseRequested(period=PERIOD, requested_by="admin:bench"),
        contract_id=contract,
        source="bench",
        producer_id=f"close:{PERIOD}",
    )
    await publish_events(bus, [close])
    closes = [
        d
        for d in decode(await bus.read_all(TOPIC_CONTRACTS, key)).delivered
        if d.type == close.type and d.contract_id == contract
    ]
    # The close must not hold the event loop (it reads the month a chunk at a time). The
    # bench's own objects (the messages it published) are no part of a ledger's heap: frozen,
    # the collector's full passes do not walk them meanwhile.
    gc.freeze()
    try:
        async with loop_stalls() as stalls:
            await apply_delivered(engine, closes, keyring=None)
            await relay_outbox(Runtime("ledger", settings, engine, bus, SECRET))
    finally:
        gc.unfreeze()
    closed = time.perf_counter()
    entries = await journal_store.entries(engine, contract)
    if not entries or chain_breaks(entries):
        raise BenchError(
            f"the live journal is wrong: {len(entries)} entries, {chain_breaks(entries)}"
        )
    finals = [e for e in entries if e.period == PERIOD and e.kind != "adjustment"]
    counted = sum(e.derivation.events for e in finals)
    if counted != len(messages):
        raise BenchError(f"the close of {PERIOD} counted {counted:,} of {len(messages):,} events")
    records = len(messages) + sum(
        [len(await bus.read_all(t, key)) for t in TOPICS if t != TOPIC_MEASUREMENTS]
    )
    fold_s = folded - published
    progress(
        f"  history: {len(messages):,} measurements published in {published - clock:.1f}s,"
        f" folded in {fold_s:.1f}s ({len(messages) / fold_s:,.0f}/s), closed and relayed"
        f" in {closed - folded:.1f}s (the event loop's longest stall meanwhile"
        f" {max(stalls, default=0.0) * 1000:.0f} ms): {len(entries)} journal entries,"
        f" {records:,} records"
    )
    return Built(len(messages), records, len(entries), entries[-1].hash, fold_s)


async def _fold(bus: Bus, engine: AsyncEngine, topic: str, key: str | None) -> None:
    """Decode and apply a topic in bus order (only `key`'s records, given one), a batch at
    a time, as the fold worker does."""
    for chunk in chunks(await bus.read_all(topic, key), FOLD_BATCH):
        decoded = decode_measurements(chunk)
        if decoded.failures:
            raise BenchError(f"{len(decoded.failures)} undecodable records on {topic}")
        await apply_delivered(engine, decoded.delivered, keyring=None)


async def read_rate(env: Ledger, built: Built) -> float:
    """The raw baseline: records per second through `bus.read_all` of the four topics."""
    start = time.perf_counter()
    found = sum([len(await env.bus.read_all(topic)) for topic in TOPICS])
    seconds = time.perf_counter() - start
    if found != built.bus_records:
        raise BenchError(f"read {found:,} records, expected {built.bus_records:,}")
    return found / seconds


@dataclass(frozen=True)
class Ledger:
    """A running bus and a ledger database: Kafka + Postgres, or the embedded SQL log."""

    mode: str
    settings: Settings
    bus: Bus
    engine: AsyncEngine
    scratch: Path

    @contextlib.asynccontextmanager
    async def fresh_engine(self) -> AsyncIterator[AsyncEngine]:
        """Another empty database of the same kind (a new Postgres database, or SQLite file)
        with the ledger's tables, for a replay to rebuild into."""
        async with contextlib.AsyncExitStack() as stack:
            if self.mode == DISTRIBUTED:
                url = await stack.enter_async_context(postgres_database())
            else:
                url = f"sqlite+aiosqlite:///{self.scratch / f'replay-{uuid.uuid4().hex[:8]}.db'}"
            engine = create_engine(url)
            stack.push_async_callback(engine.dispose)
            await create_schema(engine, store.metadata)
            yield engine


@contextlib.asynccontextmanager
async def ledger(mode: str) -> AsyncIterator[Ledger]:
    """A fresh tansu broker and Postgres database, or a fresh embedded data dir; raises
    `Unavailable` where the broker or the database is missing."""
    async with contextlib.AsyncExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slapay-bench-")))
        if mode == DISTRIBUTED:
            bootstrap = stack.enter_context(broker())
            url = await stack.enter_async_context(postgres_database())
            settings = Settings(bus=f"kafka://{bootstrap}", database_url=url, data_dir=scratch)
        else:
            settings = Settings(bus="sqlite", database_url=None, data_dir=scratch)
        engine = create_engine(settings.database_url_for("ledger"))
        stack.push_async_callback(engine.dispose)
        bus = create_bus(settings)
        stack.push_async_callback(bus.stop)
        await bus.start()
        yield Ledger(mode, settings, bus, engine, scratch)
