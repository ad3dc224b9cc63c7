"""A subscriber built on the CloudEvents SDK reads every record slapay writes, on both buses:
on Kafka with a plain aiokafka consumer from offset 0 (as docs/subscribers.md shows), on the
embedded log through the bus port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka

from shared.bus import Record
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    Envelope,
    StatementProvisional,
)
from tests.doc_snippets import defined_by
from tests.integration.seeded import agree, measurements, period_back
from tests.system import System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT = "cloud-co"
TOPICS = (TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_JOURNAL)
SOURCES = {
    TOPIC_CONTRACTS: "/slapay/ledger",
    TOPIC_MEASUREMENTS: "/slapay/ingest",
    TOPIC_JOURNAL: "/slapay/ledger",
}


async def _from_kafka(bootstrap: str) -> list[tuple[str, kafka.KafkaMessage]]:
    """Every record of TOPICS from offset 0 up to now, as a subscriber's own consumer reads
    them (no group: nothing committed)."""
    consumer = AIOKafkaConsumer(
        *TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        found = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for r in batch:
                    message = kafka.KafkaMessage(headers=dict(r.headers), key=r.key, value=r.value)
                    found.append((r.topic, message))
        return found
    finally:
        await consumer.stop()


async def _from_the_log(system: System) -> list[tuple[str, kafka.KafkaMessage]]:
    bus = system.apps["ledger"].state.runtime.bus
    records: list[Record] = [r for topic in TOPICS for r in await bus.read_all(topic)]
    return [
        (r.topic, kafka.KafkaMessage({k: v.encode() for k, v in r.headers.items()}, r.key, r.value))
        for r in records
    ]


async def _records(system: System) -> list[tuple[str, kafka.KafkaMessage]]:
    if system.settings.embedded:
        return await _from_the_log(system)
    return await _from_kafka(system.settings.kafka_bootstrap())


def _types(found: list[tuple[str, kafka.KafkaMessage]]) -> set[str]:
    return {m.headers.get("ce_type", b"").decode() for _, m in found}


async def test_every_record_is_a_cloudevent(system: System) -> None:
    await agree(system, CONTRACT, period_back(1))
    moment = datetime.now(UTC) - timedelta(minutes=5)
    posted = await system.ingest.post(
        "/v1/measurements",
        json=measurements(CONTRACT, 3, "ce", moment),
        headers=system.token("agent", [CONTRACT]),
    )
    assert posted.status_code == 202, posted.text
    found = await eventually(
        lambda: _records(system), lambda f: StatementProvisional.TYPE in _types(f)
    )
    assert {topic for topic, _ in found} == set(TOPICS)
    for topic, message in found:
        event: BaseCloudEvent = kafka.from_binary_event(message)
        envelope = Envelope.model_validate(event.get_data())
        assert event.get_specversion() == "1.0"
        assert event.get_id() == str(envelope.event_id)
        assert event.get_type() == envelope.type == message.headers["type"].decode()
        assert event.get_source() == SOURCES[topic]
        assert event.get_subject() == envelope.contract_id == CONTRACT
        assert event.get_time() == envelope.occurred_at
        assert event.get_datacontenttype() == "application/json"
        assert "traceparent" in message.headers


@pytest.fixture
async def on_kafka(tmp_path: Path, postgres_url: str, fresh_kafka: str) -> AsyncIterator[System]:
    settings = make_settings(
        data_dir=tmp_path, bus=f"kafka://{fresh_kafka}", database_url=postgres_url
    )
    async with running_system(settings) as running:
        yield running


async def test_the_documented_kafka_consumer_reads_the_journal(on_kafka: System) -> None:
    """docs/subscribers.md's consumer, as written, against slapay on Kafka."""
    got: list[BaseCloudEvent] = []
    follow = defined_by("kafka-consumer", handle=got.append)["follow"]
    await agree(on_kafka, CONTRACT, period_back(1))
    moment = datetime.now(UTC) - timedelta(minutes=5)
    posted = await on_kafka.ingest.post(
        "/v1/measurements",
        json=measurements(CONTRACT, 3, "doc", moment),
        headers=on_kafka.token("agent", [CONTRACT]),
    )
    assert posted.status_code == 202, posted.text
    following = asyncio.create_task(follow(on_kafka.settings.kafka_bootstrap(), "doc-reader"))
    try:
        await eventually(lambda: _types_of(got), lambda t: StatementProvisional.TYPE in t)
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    event = next(e for e in got if e.get_type() == StatementProvisional.TYPE)
    data: Any = event.get_data()
    assert event.get_subject() == CONTRACT == Envelope.model_validate(data).contract_id
    assert data["data"]["statement"]["contract_id"] == CONTRACT


async def _types_of(events: list[BaseCloudEvent]) -> set[str]:
    return {e.get_type() for e in events}
