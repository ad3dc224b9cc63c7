"""The consumer loop under bad records and outages: a record whose effect fails because of
what it holds is set aside after three tries and the rest of its batch still applies; an
outage is waited out and sets nothing aside."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

from shared.consuming import Isolation, run_consumer
from shared.events import TOPIC_DEADLETTER, MeasurementRecorded, make_event
from shared.measured import Incoming, decode_measurements
from tests.fakes import InMemoryBus, InMemoryConsumer

TOPIC = "slapay.measurements"


def _measurement(i: int, contract: str = "c-1") -> bytes:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=float(i), measurement_id=f"m{i}"),
        contract_id=contract,
        source="agent:test",
        producer_id=f"m{i}",
    )
    return event.to_json()


class Ledger:
    """A transactional fake effect: a batch lands whole or not at all; records whose value is
    in `poison` make it fail, as a record the database refuses would."""

    def __init__(self, poison: set[float]) -> None:
        self.poison, self.applied = poison, set[float]()
        self.tries: dict[float, int] = {}  # tries of a poison record on its own
        self.broken = False

    async def apply(self, delivered: Sequence[Incoming]) -> None:
        values = [float(d.value) for d in delivered]  # type: ignore[union-attr]
        if self.broken:
            raise ConnectionRefusedError("the database is down")
        bad = [v for v in values if v in self.poison]
        if len(values) == 1 and bad:
            self.tries[bad[0]] = self.tries.get(bad[0], 0) + 1
        if bad:
            raise OverflowError(f"value {bad[0]} is out of range")
        self.applied.update(values)


async def _run_until(bus: InMemoryBus, ledger: Ledger, done: object, probe: object = None) -> None:
    consumer = InMemoryConsumer(bus, [TOPIC])
    task = asyncio.create_task(
        run_consumer(
            bus,
            consumer,
            ledger.apply,
            decoder=decode_measurements,
            isolation=Isolation("test", probe=probe, pause_s=0.001),  # type: ignore[arg-type]
            max_records=100,
        )
    )
    try:
        for _ in range(400):
            if done():  # type: ignore[operator]
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_poison_record_is_set_aside_after_three_tries_and_the_rest_applies() -> None:
    bus = InMemoryBus()
    await bus.publish(TOPIC, _messages(range(100)))
    ledger = Ledger(poison={37.0, 80.0})

    await _run_until(bus, ledger, lambda: len(bus.topics[TOPIC_DEADLETTER]) == 2)

    assert ledger.applied == {float(i) for i in range(100)} - {37.0, 80.0}
    assert ledger.tries == {37.0: 3, 80.0: 3}  # each tried three times on its own
    letters = [json.loads(r.value) for r in bus.topics[TOPIC_DEADLETTER]]
    assert [(x["measurement_id"], x["kind"], x["group"]) for x in letters] == [
        ("m37", "poison", "test"),
        ("m80", "poison", "test"),
    ]
    assert all(x["contract_id"] == "c-1" and x["topic"] == TOPIC for x in letters)
    assert "OverflowError: value 37.0 is out of range" in letters[0]["reason"]
    assert letters[0]["event_id"] and letters[0]["offset"] == 37
    assert json.loads(letters[0]["value"])["data"]["measurement_id"] == "m37"


async def test_an_outage_is_waited_out_and_sets_nothing_aside() -> None:
    bus = InMemoryBus()
    await bus.publish(TOPIC, _messages(range(10)))
    ledger = Ledger(poison=set())
    ledger.broken = True

    async def later() -> None:
        await asyncio.sleep(0.5)
        ledger.broken = False

    healing = asyncio.create_task(later())
    await _run_until(bus, ledger, lambda: len(ledger.applied) == 10)
    await healing
    assert ledger.applied == {float(i) for i in range(10)}
    assert bus.topics[TOPIC_DEADLETTER] == []


async def test_a_failure_while_a_dependency_is_down_is_an_outage_whatever_its_kind() -> None:
    """The probe decides: an error of any kind while the database does not answer is not
    blamed on the record."""
    bus = InMemoryBus()
    await bus.publish(TOPIC, _messages(range(5)))
    ledger = Ledger(poison={2.0})
    down = True

    async def probe() -> None:
        if down:
            raise ConnectionRefusedError("database down")

    consumer = InMemoryConsumer(bus, [TOPIC])
    task = asyncio.create_task(
        run_consumer(
            bus,
            consumer,
            ledger.apply,
            decoder=decode_measurements,
            isolation=Isolation("test", probe=probe, pause_s=0.001),
        )
    )
    try:
        await asyncio.sleep(0.5)
        assert bus.topics[TOPIC_DEADLETTER] == [] and ledger.applied == set()
        down = False
        for _ in range(400):
            if bus.topics[TOPIC_DEADLETTER]:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert ledger.applied == {0.0, 1.0, 3.0, 4.0}
    assert len(bus.topics[TOPIC_DEADLETTER]) == 1


async def test_an_unreadable_record_is_set_aside_and_the_stream_goes_on() -> None:
    bus = InMemoryBus()
    await bus.publish(TOPIC, _messages(range(3)))
    bus.topics[TOPIC][1] = bus.topics[TOPIC][1]._replace(value=b"{not json")
    ledger = Ledger(poison=set())
    await _run_until(bus, ledger, lambda: len(ledger.applied) == 2)
    assert ledger.applied == {0.0, 2.0}
    (letter,) = [json.loads(r.value) for r in bus.topics[TOPIC_DEADLETTER]]
    assert letter["kind"] == "unreadable" and letter["value"] == "{not json"


def _messages(values: range) -> list:  # type: ignore[type-arg]
    from shared.bus import Message

    return [Message("c-1", _measurement(i), {"type": MeasurementRecorded.TYPE}) for i in values]
