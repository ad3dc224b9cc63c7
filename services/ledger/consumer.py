"""Bus edge of the ledger: the fold's consumer (contracts, measurements, reviews and ticket
events into durable state: `fold/`), and the listing of dead letters."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from services.ledger import deadletter_store
from services.ledger.fold.apply import GROUP, apply_delivered
from shared import heap
from shared.bus import kafka_records
from shared.consuming import ReadAhead, run_consumer
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_DEADLETTER,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    TOPIC_TICKETS,
)
from shared.measured import Incoming, decode_measurements
from shared.retrying import retrying
from shared.runtime import Runtime, Worker
from shared.signing import Keyring

DEADLETTER_GROUP = "ledger.deadletters"


def fold_worker(keyring: Keyring | None) -> Worker:
    """The fold as a worker; final statements it closes are signed with `keyring`."""

    async def fold_loop(runtime: Runtime) -> None:
        await _fold(runtime, keyring)

    return fold_loop


async def _fold(runtime: Runtime, keyring: Keyring | None) -> None:
    heap.settle()  # the fold's batches are what the collector's defaults slow down
    kafka_records.install()
    consumer = runtime.bus.consumer(
        [TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_REVIEWS, TOPIC_TICKETS], GROUP
    )
    read_ahead = ReadAhead()

    async def fold(delivered: Sequence[Incoming]) -> None:
        touched = await apply_delivered(
            runtime.engine, delivered, keyring=keyring, cpu_done=read_ahead.ready
        )
        runtime.telemetry.handoff.remember(touched)  # provisional statements continue the trace

    await run_consumer(
        runtime.bus,
        consumer,
        fold,
        decoder=decode_measurements,
        isolation=runtime.isolation(GROUP),
        read_ahead=read_ahead,
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


async def deadletter_loop(runtime: Runtime) -> None:
    """Keep the listing of dead letters (`GET /v1/deadletter`) up to date."""
    await retrying(functools.partial(_follow_deadletters, runtime), what="following dead letters")


async def _follow_deadletters(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_DEADLETTER], DEADLETTER_GROUP)
    try:
        await consumer.start()
        while True:
            records = await consumer.fetch(max_records=1000, timeout_s=0.5)
            if records:
                await deadletter_store.add(runtime.engine, deadletter_store.rows_of(records))
                await consumer.commit(records)
    finally:
        await consumer.stop()
