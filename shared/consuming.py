"""The consumer loop every service uses: fetch, decode, apply durably, then commit.

An outage (database or broker down) is retried until it ends, and nothing is committed
before its effect is durable. A record that cannot be parsed, or whose effect fails because
of what it holds, goes to `slapay.deadletter` with the reason and the stream goes on: a
failing batch is split until the records that fail alone are found, each is tried
`POISON_ATTEMPTS` times, then set aside (docs/architecture.md, "Isolation").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from shared import deadletters
from shared.bus import Bus, Consumer, Record
from shared.deadletters import DeadLetter
from shared.events import TOPIC_DEADLETTER, Envelope
from shared.metrics import ConsumerMetrics
from shared.retrying import Probe, blames_the_data, retrying
from shared.telemetry import batch_span

log = logging.getLogger(__name__)

BATCH = 10_000
"""Records fetched and applied per transaction: each batch pays a fixed cost (books,
aggregates, commits), so larger batches fold faster, up to about this size."""

COMMIT_GRACE_S = 5.0
"""How long a stopping consumer waits for its last commit to the bus. A commit left undone
only means the batch is delivered again, and effects are idempotent."""

DECODE_SLICE = 1_000
"""Records decoded per step while reading ahead; between steps the batch being applied gets
the thread back (its database replies wait otherwise)."""

POISON_ATTEMPTS = 3
"""Tries of a record whose effect fails while the database and the bus answer."""


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

    @property
    def raw(self) -> bytes:
        return self.event.to_json()


class Item(Protocol):
    """What a decoder hands the loop: a record read, with its place on the bus and its
    bytes (what a dead letter quotes)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def contract_id(self) -> str: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def type(self) -> str: ...


Handler = Callable[[Sequence[Any]], Awaitable[None]]
"""Applies a batch of the items its consumer's decoder made, durably."""


@dataclass
class Decoded:
    delivered: list[Any]
    """The items, in bus order (`Delivered` from `decode`; a decoder may make others)."""
    failures: list[tuple[str, str, bytes, str]]
    """(topic, key, value, reason) of each record that could not be read."""
    counts: Counter[str] | None = None
    """Items by event type, if the decoder counted them as it read (else the loop does)."""


Decoder = Callable[[Sequence[Record]], Decoded]


def envelope_of(record: Record) -> Delivered | str:
    """The record's event with its place on the bus, or why it cannot be read."""
    try:
        event = Envelope.from_json(record.value)
        event.payload()
    except (ValidationError, ValueError) as exc:
        return str(exc)[:2000]
    return Delivered(event, record.topic, record.partition, record.offset)


def decode(records: Sequence[Record]) -> Decoded:
    """Parse each record's envelope and payload; one that fails is a failure, with why."""
    delivered: list[Any] = []
    failures = []
    for record in records:
        found = envelope_of(record)
        if isinstance(found, str):
            failures.append((record.topic, record.key, record.value, found))
        else:
            delivered.append(found)
    return Decoded(delivered, failures)


async def stepwise(decoder: Decoder, records: Sequence[Record]) -> Decoded:
    """`decoder` over `records`, `DECODE_SLICE` at a time, letting other tasks run between."""
    decoded = Decoded([], [], Counter())
    for start in range(0, len(records), DECODE_SLICE):
        if start:
            await asyncio.sleep(0)
        part = decoder(records[start : start + DECODE_SLICE])
        decoded.delivered.extend(part.delivered)
        decoded.failures.extend(part.failures)
        assert decoded.counts is not None
        decoded.counts.update(part.counts if part.counts is not None else _counts(part))
    return decoded


def _counts(decoded: Decoded) -> Counter[str]:
    return Counter(item.type for item in decoded.delivered)


def envelopes(delivered: Sequence[Delivered]) -> list[Envelope]:
    """The envelopes of a batch `decode` made."""
    return [d.event for d in delivered]


@dataclass
class ReadAhead:
    """When a consumer reads its next batch. Without one, it reads as soon as the current
    batch is handed over (eager). With one, it waits until the handler calls `ready()` (or
    returns): a handler whose batch is CPU work first and then a wait on the database gets
    the reading done during that wait, instead of competing with its own CPU work."""

    _go: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._go.set()

    def ready(self) -> None:
        """The handler's own CPU work is done: read the next batch now."""
        self._go.set()

    def _hold(self) -> None:
        self._go.clear()

    async def _wait(self) -> None:
        await self._go.wait()


@dataclass
class Isolation:
    """How the loop tells a poison record from an outage: `probe` raises when the database
    or the bus does not answer; the loop's group names its dead letters."""

    group: str
    probe: Probe | None = None
    attempts: int = POISON_ATTEMPTS
    pause_s: float = 0.1


class _Outage(Exception):
    """The effect failed while a dependency was down: retry the batch until it answers."""


async def run_consumer(
    bus: Bus,
    consumer: Consumer,
    handler: Handler,
    *,
    decoder: Decoder = decode,
    isolation: Isolation | None = None,
    read_ahead: ReadAhead | None = None,
    observer: ConsumerMetrics | None = None,
    max_records: int = BATCH,
    max_backoff_s: float = 10.0,
) -> None:
    """Run until cancelled. Effects must be idempotent: a crash replays the last batch.

    Each batch is one span (`batch_span`); `observer` counts what was applied and dead-
    lettered and watches the lag. The next batch is fetched and decoded while the current
    one is applied, a slice at a time so that the two take turns on the thread; each commit
    names the records it covers, so nothing read ahead is marked done before its effect is.
    A batch's commit goes out once its effect is durable and runs while the next batch is
    applied, one commit in flight at a time; a stopping consumer lets the last ones finish
    (`COMMIT_GRACE_S`)."""
    observer = observer or ConsumerMetrics("")
    isolation = isolation or Isolation(observer.group)
    gate = read_ahead or ReadAhead()

    async def read_next() -> tuple[list[Record], Decoded]:
        await gate._wait()
        records = await consumer.fetch(max_records=max_records, timeout_s=0.5)
        return records, await stepwise(decoder, records)

    async def commit(records: list[Record]) -> None:
        await retrying(functools.partial(consumer.commit, records), what="consumer commit")

    async def last_commits(running: asyncio.Task[None] | None, unsent: list[Record] | None) -> None:
        if running is not None:
            await running
        if unsent:
            await commit(unsent)

    async def apply(decoded: Decoded) -> list[DeadLetter]:
        letters = [_unreadable(failure, isolation.group) for failure in decoded.failures]
        poisoned = await _apply_isolating(handler, decoded.delivered, isolation)
        letters += poisoned
        if letters:
            await bus.publish(TOPIC_DEADLETTER, [letter.to_message() for letter in letters])
        return letters

    ahead: asyncio.Task[tuple[list[Record], Decoded]] | None = None
    committing: asyncio.Task[None] | None = None
    applied: list[Record] | None = None  # applied, its commit not started yet
    try:
        await consumer.start()  # inside: stopped even if cancelled while joining the group
        ahead = asyncio.create_task(read_next())
        while True:
            records, decoded = await ahead
            if records and read_ahead is not None:
                gate._hold()
            ahead = asyncio.create_task(read_next())
            await observer.poll_lag(consumer)
            if not records:
                continue
            with batch_span(observer.group, records):
                try:
                    letters = await retrying(
                        functools.partial(apply, decoded),
                        what=f"consumer {observer.group or 'batch'}",
                        max_backoff_s=max_backoff_s,
                    )
                finally:
                    gate.ready()
            observer.applied(decoded.counts if decoded.counts is not None else _counts(decoded))
            observer.deadlettered(letter.topic for letter in letters)
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


async def _apply_isolating(
    handler: Handler, items: Sequence[Item], isolation: Isolation
) -> list[DeadLetter]:
    """Apply `items`; where that fails because of the data, apply each half on its own, down
    to single records, and return those that failed every attempt as dead letters. Raises
    `_Outage` (the caller retries all of it) when a dependency is down."""
    if not items:
        return []
    attempts = isolation.attempts if len(items) == 1 else 1
    for attempt in range(1, attempts + 1):
        try:
            await handler(items)
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not await blames_the_data(exc, isolation.probe):
                raise _Outage(str(exc)) from exc
            failure = exc
            if attempt < attempts:
                log.warning("%s: a record failed (%s); trying again", isolation.group, exc)
                await asyncio.sleep(isolation.pause_s * attempt)
    if len(items) > 1:
        middle = len(items) // 2
        return [
            *await _apply_isolating(handler, items[:middle], isolation),
            *await _apply_isolating(handler, items[middle:], isolation),
        ]
    item = items[0]
    reason = f"{type(failure).__name__}: {failure}"
    log.error("%s: dead-lettering %s@%s: %s", isolation.group, item.topic, item.offset, reason)
    event_id, measurement_id = deadletters.ids_in(item.raw)
    return [
        DeadLetter(
            topic=item.topic,
            key=item.contract_id,
            value=item.raw,
            reason=reason,
            partition=item.partition,
            offset=item.offset,
            event_id=event_id,
            measurement_id=measurement_id,
            group=isolation.group,
            kind="poison",
        )
    ]


def _unreadable(failure: tuple[str, str, bytes, str], group: str) -> DeadLetter:
    topic, key, value, reason = failure
    event_id, measurement_id = deadletters.ids_in(value)
    return DeadLetter(
        topic=topic,
        key=key,
        value=value,
        reason=reason,
        event_id=event_id,
        measurement_id=measurement_id,
        group=group,
    )


async def _settle(task: asyncio.Task[None], grace_s: float) -> None:
    """Let `task` finish within `grace_s` (the last commits, on the way out), else cancel it."""
    with contextlib.suppress(asyncio.CancelledError):  # cancelled again: stop waiting
        await asyncio.wait({task}, timeout=grace_s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
