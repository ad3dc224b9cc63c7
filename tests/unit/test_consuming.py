"""The consumer loop's read-ahead: when the next batch is read, and that reading it in steps
changes nothing read; its commits: after their batch's effect, one at a time, the last one
awaited on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import pytest

from shared import consuming
from shared.bus import Message, Record
from shared.consuming import ReadAhead, decode, run_consumer, stepwise
from shared.events import MeasurementRecorded, ReviewSubmitted, make_event
from shared.measured import Incoming, decode_measurements
from tests.fakes import InMemoryBus, InMemoryConsumer

TOPIC = "slapay.measurements"


class WatchedConsumer(InMemoryConsumer):
    """Notes each fetch and each commit in `log`, in the order they happen."""

    def __init__(self, bus: InMemoryBus, log: list[str], commit_s: float = 0.0) -> None:
        super().__init__(bus, [TOPIC])
        self.log, self.commit_s = log, commit_s

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        records = await super().fetch(max_records, timeout_s)
        if records:
            self.log.append(f"fetched {records[0].offset}")
        return records

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        last = records[-1].offset if records else None
        if self.commit_s:
            self.log.append(f"committing {last}")
            await asyncio.sleep(self.commit_s)
        self.log.append(f"committed {last}")

    async def stop(self) -> None:
        self.log.append("stopped")


def _measurement(i: int) -> Message:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=float(i)),
        contract_id="c-1",
        source="agent:test",
        producer_id=f"m{i}",
    )
    return Message(key="c-1", value=event.to_json(), headers={"type": event.type})


async def _run(read_ahead: str, signal: bool, batches: int = 3, commit_s: float = 0.0) -> list[str]:
    """Run the loop over `batches` batches of 2 records; return what happened, in order."""
    bus, log = InMemoryBus(), []
    await bus.publish(TOPIC, [_measurement(i) for i in range(2 * batches)])
    consumer = WatchedConsumer(bus, log, commit_s)
    applied = asyncio.Event()
    gate = ReadAhead() if read_ahead == "signalled" else None

    async def handler(delivered: Sequence[Incoming]) -> None:
        first = delivered[0].offset
        log.append(f"cpu work {first}")
        await asyncio.sleep(0.01)  # its own turns on the thread: the next batch is not read
        if signal:
            assert gate is not None
            gate.ready()
            log.append(f"signalled {first}")
        await asyncio.sleep(0.05)  # "the database" at work: the next batch is read meanwhile
        log.append(f"applied {first}")
        if first == 2 * (batches - 1):
            applied.set()

    task = asyncio.create_task(
        run_consumer(
            bus,
            consumer,
            handler,
            max_records=2,
            decoder=decode_measurements,
            read_ahead=gate,
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
    assert log.index("applied 0") < log.index("committed 1") < log.index("applied 2")
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


async def test_commits_follow_their_effects_one_at_a_time_and_the_last_is_awaited() -> None:
    # each commit takes longer than the next batch's apply: they still go out one by one
    log = await _run("signalled", signal=True, batches=4, commit_s=0.15)
    commits = [line for line in log if line.startswith("commit")]
    assert commits == [
        "committing 1",
        "committed 1",
        "committing 3",
        "committed 3",
        "committing 5",
        "committed 5",
        "committing 7",
        "committed 7",  # cancelled meanwhile: the last commit was let finish
    ]
    for first in (0, 2, 4, 6):
        assert log.index(f"applied {first}") < log.index(f"committing {first + 1}")
    assert log.index("cpu work 2") < log.index("committed 1")  # the commit overlaps the next
    assert log[-1] == "stopped"


async def test_a_commit_that_hangs_does_not_hold_up_stopping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consuming, "COMMIT_GRACE_S", 0.1)
    log = await _run("signalled", signal=True, batches=1, commit_s=3600)
    assert log[-2:] == ["committing 1", "stopped"]  # given up after the grace (the test's 5 s)


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
    in_steps = await stepwise(decode_measurements, records)
    at_once = decode_measurements(records)
    assert in_steps == at_once
    assert len(in_steps.delivered) == 6 and len(in_steps.failures) == 2


def test_measurements_are_counted_by_type_however_they_were_read() -> None:
    review = make_event(
        ReviewSubmitted(review_id="rev-1", reviewer_pseudonym="r-1", rating=4),
        contract_id="c-1",
        source="customer:test",
    )
    fast = [
        Record(TOPIC, 0, i, "c-1", _measurement(i).value, {"type": MeasurementRecorded.TYPE})
        for i in range(3)
    ]
    slow = [Record(TOPIC, 0, 3, "c-1", _measurement(3).value, {})]  # no header: pydantic
    other = [Record("slapay.reviews", 0, 9, "c-1", review.to_json(), {})]
    expected = {MeasurementRecorded.TYPE: 4, ReviewSubmitted.TYPE: 1}
    assert decode_measurements([*fast, *slow, *other]).counts == expected
    assert decode([*fast, *slow, *other]).counts is None  # the loop counts those itself
    assert decode_measurements([]).counts == {}
