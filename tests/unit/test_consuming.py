"""The consumer loop's read-ahead: when the next batch is read, and that reading it in steps
changes nothing read."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import pytest

from shared import consuming
from shared.bus import Message, Record
from shared.consuming import Incoming, decode, decode_stepwise, run_delivered_consumer
from shared.events import MeasurementRecorded, ReviewSubmitted, make_event
from tests.fakes import InMemoryBus, InMemoryConsumer

TOPIC = "slapay.measurements"


class WatchedConsumer(InMemoryConsumer):
    """Notes each fetch and each commit in `log`, in the order they happen."""

    def __init__(self, bus: InMemoryBus, log: list[str]) -> None:
        super().__init__(bus, [TOPIC])
        self.log = log

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        records = await super().fetch(max_records, timeout_s)
        if records:
            self.log.append(f"fetched {records[0].offset}")
        return records

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        self.log.append(f"committed {records[-1].offset if records else None}")


def _measurement(i: int) -> Message:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=float(i)),
        contract_id="c-1",
        source="agent:test",
        producer_id=f"m{i}",
    )
    return Message(key="c-1", value=event.to_json(), headers={"type": event.type})


async def _run(read_ahead: str, signal: bool, batches: int = 3) -> list[str]:
    """Run the loop over `batches` batches of 2 records; return what happened, in order."""
    bus, log = InMemoryBus(), []
    await bus.publish(TOPIC, [_measurement(i) for i in range(2 * batches)])
    consumer = WatchedConsumer(bus, log)
    applied = asyncio.Event()

    async def handler(delivered: Sequence[Incoming]) -> None:
        first = delivered[0].offset
        log.append(f"cpu work {first}")
        await asyncio.sleep(0.01)  # its own turns on the thread: the next batch is not read
        if signal:
            consuming.read_next_batch()
            log.append(f"signalled {first}")
        await asyncio.sleep(0.05)  # "the database" at work: the next batch is read meanwhile
        log.append(f"applied {first}")
        if first == 2 * (batches - 1):
            applied.set()

    task = asyncio.create_task(
        run_delivered_consumer(
            bus,
            consumer,
            handler,
            max_records=2,
            measurements=True,
            read_ahead=read_ahead,  # type: ignore[arg-type]
        )
    )
    try:
        await asyncio.wait_for(applied.wait(), 5)
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return log


async def test_signalled_read_ahead_waits_for_the_handler_to_hand_over_to_the_database() -> None:
    log = await _run("signalled", signal=True)
    for first, following in ((0, 2), (2, 4)):
        assert log.index(f"signalled {first}") < log.index(f"fetched {following}")
        assert log.index(f"fetched {following}") < log.index(f"applied {first}")
    assert log.index("applied 0") < log.index("committed 1") < log.index("cpu work 2")
    assert [line for line in log if line.startswith("applied")] == [
        "applied 0",
        "applied 2",
        "applied 4",
    ]


async def test_eager_read_ahead_reads_during_the_handlers_own_work() -> None:
    log = await _run("eager", signal=False)
    assert log.index("fetched 2") < log.index("applied 0")
    assert log.index("fetched 2") == log.index("cpu work 0") + 1  # at its first turn


async def test_a_handler_that_never_signals_still_gets_every_batch() -> None:
    log = await _run("signalled", signal=False)
    assert log.index("applied 0") < log.index("fetched 2")  # read once the handler returned
    assert log.index("applied 2") < log.index("fetched 4")
    assert "applied 4" in log and "committed 5" in log


def test_read_next_batch_outside_a_consumer_does_nothing() -> None:
    consuming.read_next_batch()  # a replay or a test applies batches without a consumer


async def test_decoding_in_steps_reads_what_decoding_at_once_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consuming, "DECODE_SLICE", 3)
    review = make_event(
        ReviewSubmitted(review_id="rev-1", reviewer_pseudonym="r-1", rating=4),
        contract_id="c-1",
        source="customer:test",
    )
    values = [_measurement(i).value for i in range(7)]
    values[2] = b"not json"
    values[5] = review.to_json()
    values.append(json.dumps({"event_id": "x"}).encode())
    records = [
        Record(TOPIC, 0, i, "c-1", v, {"type": MeasurementRecorded.TYPE})
        for i, v in enumerate(values)
    ]
    stepwise = await decode_stepwise(records, measurements=True)
    at_once = decode(records, measurements=True)
    assert stepwise == at_once
    assert len(stepwise.delivered) == 6 and len(stepwise.failures) == 2
