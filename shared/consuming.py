"""The consumer loop every service uses: fetch, apply durably, then commit.

A batch whose effect fails (database down) is retried with back-off and never committed
before it is applied; a record that cannot be parsed goes to `slapay.deadletter`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from shared import measured
from shared.bus import Bus, Consumer, Record
from shared.events import Envelope
from shared.measured import DeliveredMeasurement
from shared.metrics import ConsumerMetrics
from shared.publishing import publish_deadletters
from shared.telemetry import batch_span

log = logging.getLogger(__name__)

BATCH = 10_000
"""Records fetched and applied per transaction. Each batch also pays a fixed cost (reading
the contracts' books, upserting aggregates, committing to the database and to the bus):
measured on the ledger fold, 10,000 a batch folds about a sixth faster than 5,000, and
20,000 no faster than 10,000."""

COMMIT_GRACE_S = 5.0
"""How long a stopping consumer waits for its last commit to the bus. A commit left undone
only means the batch is delivered again, and effects are idempotent."""

DECODE_SLICE = 1_000
"""Records decoded per step while reading ahead; between steps the batch being applied gets
the thread back (its database replies wait otherwise)."""

Handler = Callable[[Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """An event with its place on the bus (topic, partition, offset)."""

    event: Envelope
    topic: str
    partition: int
    offset: int

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def contract_id(self) -> str:
        return self.event.contract_id


Incoming = Delivered | DeliveredMeasurement
"""What a consumer hands its handler: an envelope, or (when asked for) a measurement
read without one."""
DeliveredHandler = Callable[[Sequence[Incoming]], Awaitable[None]]


@dataclass(frozen=True)
class Decoded:
    delivered: list[Incoming]
    failures: list[tuple[str, str, bytes, str]]


def decode(records: Sequence[Record], *, measurements: bool = False) -> Decoded:
    """Parse each record's envelope and payload; one that fails is a failure, with why.

    With `measurements`, each measurement event becomes a `DeliveredMeasurement`: read by
    msgspec when it is in the form ingest writes (the fold's hot path), else from the
    envelope pydantic parsed. The record's `type` header only picks the reader to try."""
    delivered: list[Incoming] = []
    failures = []
    for record in records:
        if measurements and record.headers.get("type") == measured.TYPE:
            fast = measured.read(record)
            if fast is not None:
                delivered.append(fast)
                continue
        try:
            event = Envelope.from_json(record.value)
            event.payload()
        except (ValidationError, ValueError) as exc:
            failures.append((record.topic, record.key, record.value, str(exc)[:2000]))
            continue
        if measurements and event.type == measured.TYPE:
            delivered.append(
                DeliveredMeasurement.of(
                    event, record.topic, record.partition, record.offset, record.value
                )
            )
        else:
            delivered.append(Delivered(event, record.topic, record.partition, record.offset))
    return Decoded(delivered, failures)


async def decode_stepwise(records: Sequence[Record], *, measurements: bool = False) -> Decoded:
    """`decode`, `DECODE_SLICE` records at a time, letting other tasks run in between."""
    decoded = Decoded([], [])
    for start in range(0, len(records), DECODE_SLICE):
        if start:
            await asyncio.sleep(0)
        part = decode(records[start : start + DECODE_SLICE], measurements=measurements)
        decoded.delivered.extend(part.delivered)
        decoded.failures.extend(part.failures)
    return decoded


_read_next = ContextVar[asyncio.Event | None]("slapay_read_next", default=None)


def event_counts(delivered: Sequence[Incoming]) -> Counter[str]:
    """Events by type. Measurements, most of a batch, are counted by their class, not asked
    their type one by one (the consumer's hot path)."""
    kinds = Counter(map(type, delivered))
    measurements = kinds.pop(DeliveredMeasurement, 0)
    counts = Counter({measured.TYPE: measurements} if measurements else {})
    if kinds:
        counts.update(d.type for d in delivered if not isinstance(d, DeliveredMeasurement))
    return counts


def read_next_batch() -> None:
    """Called by a handler of `run_delivered_consumer(..., read_ahead="signalled")` once its
    own CPU work for the batch is done and the rest is the database's: the consumer reads and
    decodes its next batch meanwhile. A no-op anywhere else (a replay, a test)."""
    signal = _read_next.get()
    if signal is not None:
        signal.set()


async def run_consumer(
    bus: Bus,
    consumer: Consumer,
    handler: Handler,
    *,
    max_records: int = BATCH,
    max_backoff_s: float = 10.0,
    observer: ConsumerMetrics | None = None,
) -> None:
    """Run until cancelled. Effects must be idempotent: a crash replays the last batch."""

    async def on_delivered(delivered: Sequence[Incoming]) -> None:
        await handler([d.event for d in delivered if isinstance(d, Delivered)])  # all are

    await run_delivered_consumer(
        bus,
        consumer,
        on_delivered,
        max_records=max_records,
        max_backoff_s=max_backoff_s,
        observer=observer,
    )


async def run_delivered_consumer(
    bus: Bus,
    consumer: Consumer,
    handler: DeliveredHandler,
    *,
    max_records: int = BATCH,
    max_backoff_s: float = 10.0,
    observer: ConsumerMetrics | None = None,
    measurements: bool = False,
    read_ahead: Literal["eager", "signalled"] = "eager",
) -> None:
    """`run_consumer` for handlers that need each event's place on the bus (and, with
    `measurements`, get measurements as `DeliveredMeasurement`s: see `decode`). Each batch is
    one span (`batch_span`); `observer` counts what was applied and watches the lag.

    The next batch is fetched and decoded while the current one is applied, a slice at a
    time so that the two take turns on the thread; each commit names the records it covers,
    so nothing read ahead is marked done before its effect is. A batch's commit to the bus
    goes out once its effect is durable and runs while the next batch is applied, one commit
    in flight at a time; a stopping consumer lets the last ones finish (`COMMIT_GRACE_S`).
    `read_ahead="signalled"`
    holds the reading back until the handler calls `read_next_batch()` (or returns): a
    handler whose batch is CPU work first and then a wait on the database gets the reading
    done during the wait, instead of sharing the thread with it during the CPU work.
    Measured on the ledger fold (Kafka + Postgres, medians of three): 29.9k events/s
    signalled, 25.4k reading at once."""
    observer = observer or ConsumerMetrics("")
    go_ahead = asyncio.Event()
    go_ahead.set()

    async def read_next() -> tuple[list[Record], Decoded]:
        await go_ahead.wait()
        records = await consumer.fetch(max_records=max_records, timeout_s=0.5)
        return records, await decode_stepwise(records, measurements=measurements)

    async def commit(records: list[Record]) -> None:
        await _retrying(functools.partial(consumer.commit, records), max_backoff_s)

    async def last_commits(running: asyncio.Task[None] | None, unsent: list[Record] | None) -> None:
        if running is not None:
            await running
        if unsent:
            await commit(unsent)

    ahead: asyncio.Task[tuple[list[Record], Decoded]] | None = None
    committing: asyncio.Task[None] | None = None
    applied: list[Record] | None = None  # applied, its commit not started yet
    try:
        await consumer.start()  # inside: stopped even if cancelled while joining the group
        ahead = asyncio.create_task(read_next())
        while True:
            records, decoded = await ahead
            if records and read_ahead == "signalled":
                go_ahead.clear()
            ahead = asyncio.create_task(read_next())
            await observer.poll_lag(consumer)
            if not records:
                continue
            with batch_span(observer.group, records):
                token = _read_next.set(go_ahead)
                try:
                    await _retrying(functools.partial(_apply, bus, handler, decoded), max_backoff_s)
                finally:
                    _read_next.reset(token)
                    go_ahead.set()
            observer.applied(event_counts(decoded.delivered))
            observer.deadlettered(topic for topic, *_ in decoded.failures)
            applied = records
            if committing is not None:  # one commit in flight: positions only move forward
                await asyncio.shield(committing)  # shielded: stopping lets it finish
            committing = asyncio.create_task(commit(applied))
            applied = None
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead
        await _settle(asyncio.create_task(last_commits(committing, applied)), COMMIT_GRACE_S)
        await consumer.stop()


async def _settle(task: asyncio.Task[None], grace_s: float) -> None:
    """Let `task` finish within `grace_s` (the last commits, on the way out), else cancel it."""
    with contextlib.suppress(asyncio.CancelledError):  # cancelled again: stop waiting
        await asyncio.wait({task}, timeout=grace_s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _apply(bus: Bus, handler: DeliveredHandler, decoded: Decoded) -> None:
    if decoded.failures:
        await publish_deadletters(bus, decoded.failures)
    if decoded.delivered:
        await handler(decoded.delivered)


async def _retrying(step: Callable[[], Awaitable[None]], max_backoff_s: float) -> None:
    delay = 0.1
    while True:
        try:
            await step()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer step failed; retrying in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
