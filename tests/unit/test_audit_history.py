"""`shared.audit.history`: the measurements a recomputation starts from, in bus order, each
event once, whatever order the records were read in; `read_history` streams to the same."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from shared.audit import history, read_history
from shared.bus import Message, Record
from shared.events import (
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    MeasurementRecorded,
    ReviewSubmitted,
    make_event,
)
from tests.fakes import InMemoryBus

CONTRACT = "acme-hosting"


def measurement(n: int, contract_id: str = CONTRACT) -> bytes:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=float(n)),
        contract_id=contract_id,
        source="test",
        producer_id=f"m-{n}",
        occurred_at=datetime(2026, 10, 1, n, tzinfo=UTC),
    )
    return event.to_json()


def record(partition: int, offset: int, value: bytes, key: str = CONTRACT) -> Record:
    return Record(TOPIC_MEASUREMENTS, partition, offset, key, value, HEADERS)


def refused_by_the_ledger(n: int) -> bytes:
    """A measurement whose payload has a field the contract does not know."""
    body = orjson.loads(measurement(n))
    body["data"]["unit"] = "ms"
    return orjson.dumps(body)


HEADERS = {"type": MeasurementRecorded.TYPE}


RECORDS = [  # as a reader might get them: partitions interleaved, a repeat, noise
    record(1, 0, measurement(3)),
    record(0, 5, measurement(2)),
    record(0, 1, measurement(1)),
    record(1, 4, measurement(1)),  # the same event again, later in the bus: not counted
    record(0, 7, b"{not an envelope"),
    record(0, 9, measurement(4, "someone-else"), key="someone-else"),
    record(0, 3, measurement(1)),  # and again
    record(0, 11, refused_by_the_ledger(5)),  # dead-lettered by the ledger: not counted
    record(0, 12, measurement(6, "someone-else")),  # our key, another contract's event
]


def test_measurements_in_bus_order_each_event_once() -> None:
    found = history(CONTRACT, [], RECORDS, [])
    assert [(p, o, x.value) for p, o, x in found.measurements] == [
        (0, 1, 1.0),
        (0, 5, 2.0),
        (1, 0, 3.0),
    ]


async def test_read_history_streams_to_the_same_measurements() -> None:
    bus = InMemoryBus()
    await bus.publish(TOPIC_MEASUREMENTS, [Message(r.key, r.value) for r in RECORDS])
    streamed = await read_history(bus, CONTRACT)
    read_at_once = history(CONTRACT, [], await bus.read_all(TOPIC_MEASUREMENTS), [])
    assert streamed.measurements == read_at_once.measurements
    assert [x.value for _, _, x in streamed.measurements] == [3.0, 2.0, 1.0]


def review(n: int, rating: int, contract_id: str = CONTRACT) -> bytes:
    event = make_event(
        ReviewSubmitted(review_id=f"r-{n}", reviewer_pseudonym=f"p-{n}", rating=rating),
        contract_id=contract_id,
        source="test",
        producer_id=f"r-{n}",
    )
    return event.to_json()


def test_ratings_skip_what_the_ledger_refuses() -> None:
    """A review whose payload is invalid is dead-lettered by the ledger: the audit leaves it
    out instead of failing, as it does an envelope naming another contract under this key."""
    invalid = orjson.loads(review(2, 4))
    invalid["data"]["rating"] = 9
    reviews = [
        Record(TOPIC_REVIEWS, 0, 0, CONTRACT, review(1, 5), {}),
        Record(TOPIC_REVIEWS, 0, 1, CONTRACT, orjson.dumps(invalid), {}),
        Record(TOPIC_REVIEWS, 0, 2, CONTRACT, review(3, 1, "someone-else"), {}),
    ]
    found = history(CONTRACT, [], [], [], reviews)
    assert [(o, r.rating) for _, o, r in found.ratings] == [(0, 5)]
