"""Consumer lag as both bus adapters report it: records after the group's position, per
(topic, partition). Real adapters: the SQL log on SQLite, and a Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus import Bus, Message, ReportsLag
from shared.bus.kafka import KafkaBus
from shared.bus.sqllog import SqlLogBus

pytestmark = pytest.mark.integration
TOPIC = "slapay.lag-test"


@pytest.fixture(params=["sqllog", "kafka"])
async def bus(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Bus]:
    if request.param == "sqllog":
        adapter: Bus = SqlLogBus(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    else:
        adapter = KafkaBus(request.getfixturevalue("fresh_kafka"), partitions=3, topics=[TOPIC])
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


async def test_lag_counts_what_the_group_has_not_fetched(bus: Bus) -> None:
    await bus.publish(TOPIC, [Message(f"contract-{i}", b"{}") for i in range(20)])
    consumer = bus.consumer([TOPIC], "lag-test")
    assert isinstance(consumer, ReportsLag)
    await consumer.start()
    try:
        fetched: list[object] = []
        for _ in range(20):
            fetched += await consumer.fetch(max_records=5, timeout_s=1)
            if fetched:
                break
        lag = await consumer.lag()
        assert {topic for topic, _ in lag} == {TOPIC}
        assert sum(lag.values()) == 20 - len(fetched)
        while sum((await consumer.lag()).values()) > 0:
            assert await consumer.fetch(max_records=100, timeout_s=1)
    finally:
        await consumer.stop()
