"""One contract, every bus adapter: SQL log on SQLite and on Postgres, and Kafka."""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.bus import Bus, Consumer, Message, Record, sqllog
from shared.bus.kafka import KafkaBus
from shared.bus.sqllog import SqlLogBus
from tests import infra

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqllog-sqlite", "sqllog-postgres", "kafka"])
async def bus_and_topic(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Bus, str]]:
    topic = f"contract-{uuid.uuid4().hex[:8]}"
    bus: Bus
    if request.param == "sqllog-sqlite":
        bus = SqlLogBus(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}", poll_interval_s=0.02)
    elif request.param == "sqllog-postgres":
        admin = request.getfixturevalue("postgres_admin")
        url, name = await infra.create_database(admin)
        request.addfinalizer(lambda: asyncio.run(infra.drop_database(admin, name)))
        bus = SqlLogBus(url, poll_interval_s=0.02)
    else:
        bus = KafkaBus(
            request.getfixturevalue("kafka"), partitions=3, session_timeout_ms=1000, topics=[topic]
        )
    await bus.start()
    try:
        yield bus, topic
    finally:
        await bus.stop()


async def drain(consumer: Consumer, want: int, timeout_s: float = 15.0) -> list[Record]:
    """Fetch until `want` records arrived (or the time is up)."""
    import time

    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(await consumer.fetch(max_records=1000, timeout_s=0.3))
    return got


def messages(n: int, keys: int = 5) -> list[Message]:
    return [
        Message(key=f"k{i % keys}", value=f"{i}".encode(), headers={"type": "t"}) for i in range(n)
    ]


async def test_every_record_arrives_in_key_order(bus_and_topic: tuple[Bus, str]) -> None:
    bus, topic = bus_and_topic
    sent = messages(300)
    for start in range(0, 300, 50):
        await bus.publish(topic, sent[start : start + 50])
    consumer = bus.consumer([topic], "g-order")
    await consumer.start()
    try:
        got = await drain(consumer, 300)
    finally:
        await consumer.stop()
    assert sorted(int(r.value) for r in got) == list(range(300))
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in got:
        by_key[record.key].append(int(record.value))
        assert record.headers["type"] == "t"
    assert all(values == sorted(values) for values in by_key.values())
    assert set(by_key) == {f"k{i}" for i in range(5)}


async def test_a_fetch_stops_at_max_records_however_it_is_read(
    bus_and_topic: tuple[Bus, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka parses a fetch a slice at a time (`FETCH_SLICE`, 7 here): the slices add up to
    at most `max_records`, in key order, each record once."""
    from shared.bus import kafka

    monkeypatch.setattr(kafka, "FETCH_SLICE", 7)
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(100))
    consumer = bus.consumer([topic], "g-slices")
    await consumer.start()
    sizes, got = [], []
    try:
        while len(got) < 100 and len(sizes) < 200:
            fetched = await consumer.fetch(max_records=30, timeout_s=0.3)
            sizes.append(len(fetched))
            got.extend(fetched)
    finally:
        await consumer.stop()
    assert sorted(int(r.value) for r in got) == list(range(100))
    assert max(sizes) == 30  # more than one slice makes one fetch
    by_key: dict[str, list[int]] = defaultdict(list)
    for record in got:
        by_key[record.key].append(int(record.value))
    assert all(values == sorted(values) for values in by_key.values())


async def test_a_consumer_that_dies_before_commit_is_redelivered(
    bus_and_topic: tuple[Bus, str],
) -> None:
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(20))
    first = bus.consumer([topic], "g-crash")
    await first.start()
    assert len(await drain(first, 20)) == 20
    await first.stop()  # no commit: as if the process died after reading
    second = bus.consumer([topic], "g-crash")
    await second.start()
    try:
        again = await drain(second, 20)
    finally:
        await second.stop()
    assert sorted(int(r.value) for r in again) == list(range(20))


async def test_a_restarted_group_resumes_where_it_committed(bus_and_topic: tuple[Bus, str]) -> None:
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(30))
    first = bus.consumer([topic], "g-resume")
    await first.start()
    assert len(await drain(first, 30)) == 30
    await first.commit()
    await first.stop()
    await bus.publish(topic, [Message(key="k1", value=b"30"), Message(key="k2", value=b"31")])
    second = bus.consumer([topic], "g-resume")
    await second.start()
    try:
        rest = await drain(second, 2)
        extra = await second.fetch(timeout_s=0.5)
    finally:
        await second.stop()
    assert sorted(int(r.value) for r in rest) == [30, 31]
    assert extra == []


async def test_committing_a_batch_leaves_what_was_read_ahead_undone(
    bus_and_topic: tuple[Bus, str],
) -> None:
    """The consumer loop fetches batch n+1 before batch n is applied, then commits batch n by
    its records: after a crash, batch n+1 (and only it) is delivered again."""
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(40))
    first = bus.consumer([topic], "g-ahead")
    await first.start()
    applied: list[Record] = []
    while not applied:
        applied = await first.fetch(max_records=15, timeout_s=0.5)
    read_ahead = await drain(first, 40 - len(applied))
    await first.commit(applied)
    await first.stop()  # read_ahead was never applied
    second = bus.consumer([topic], "g-ahead")
    await second.start()
    try:
        again = await drain(second, len(read_ahead))
        extra = await second.fetch(timeout_s=0.5)
    finally:
        await second.stop()
    assert 0 < len(applied) <= 15
    assert sorted(int(r.value) for r in again + extra) == sorted(int(r.value) for r in read_ahead)


async def test_two_groups_each_see_everything(bus_and_topic: tuple[Bus, str]) -> None:
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(40))
    seen = {}
    for group in ("g-a", "g-b"):
        consumer = bus.consumer([topic], group)
        await consumer.start()
        try:
            seen[group] = sorted(int(r.value) for r in await drain(consumer, 40))
        finally:
            await consumer.stop()
    assert seen["g-a"] == seen["g-b"] == list(range(40))


async def test_read_all_returns_the_history(bus_and_topic: tuple[Bus, str]) -> None:
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(25))
    history = await bus.read_all(topic)
    assert sorted(int(r.value) for r in history) == list(range(25))


async def test_reading_one_key_gives_all_of_its_records_in_order(
    bus_and_topic: tuple[Bus, str],
) -> None:
    """An auditor reads one contract's records (its key) without the rest of the topic; on
    Kafka only the key's partition is read, and nothing of the key is elsewhere."""
    bus, topic = bus_and_topic
    await bus.publish(topic, messages(60, keys=6))
    everything = await bus.read_all(topic)
    for key in ("k0", "k3", "k5"):
        mine = [r for r in everything if r.key == key]
        read = await bus.read_all(topic, key)
        assert [(r.partition, r.offset, r.value) for r in read] == sorted(
            (r.partition, r.offset, r.value) for r in mine
        )
        assert [int(r.value) for r in read] == list(range(int(key[1]), 60, 6))
        chunked = [r async for chunk in bus.read_chunks(topic, key) for r in chunk]
        assert chunked == read
    assert await bus.read_all(topic, "nobody") == []


async def test_records_read_back_as_published(bus_and_topic: tuple[Bus, str]) -> None:
    """Every field of every record, however it is read: a reader shares decoded headers
    between records, and must not hand one publish's headers to another's records."""
    bus, topic = bus_and_topic
    sent = [
        Message(key="k1", value=b"one", headers={"type": "a", "traceparent": "00-1-1-01"}),
        Message(key="k2", value=b"two", headers={"type": "a", "traceparent": "00-1-1-01"}),
    ]
    later = [Message(key="k1", value=b"three", headers={"type": "b"})]
    await bus.publish(topic, sent)
    await bus.publish(topic, later)
    expected = sorted((topic, m.key, m.value, m.headers) for m in [*sent, *later])

    def fields(records: list[Record]) -> list[tuple[str, str, bytes, dict[str, str]]]:
        return sorted((r.topic, r.key, r.value, r.headers) for r in records)

    assert fields(await bus.read_all(topic)) == expected
    consumer = bus.consumer([topic], f"g-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    try:
        assert fields(await drain(consumer, 3)) == expected
    finally:
        await consumer.stop()


async def test_read_chunks_is_read_all_a_chunk_at_a_time(
    bus_and_topic: tuple[Bus, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus, topic = bus_and_topic
    monkeypatch.setattr(sqllog, "READ_CHUNK", 7)  # several chunks on the SQL log too
    await bus.publish(topic, messages(25))
    chunks = [chunk async for chunk in bus.read_chunks(topic)]
    assert all(chunks)
    if isinstance(bus, SqlLogBus):  # Kafka's chunks are what each fetch brings
        assert [len(chunk) for chunk in chunks] == [7, 7, 7, 4]
    place = operator.attrgetter("partition", "offset")  # Kafka interleaves partitions freely
    assert sorted((r for chunk in chunks for r in chunk), key=place) == sorted(
        await bus.read_all(topic), key=place
    )
    by_partition: dict[int, list[int]] = defaultdict(list)
    for record in (r for chunk in chunks for r in chunk):
        by_partition[record.partition].append(record.offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    assert sorted(int(r.value) for chunk in chunks for r in chunk) == list(range(25))


async def test_kafka_headers_null_or_not_utf8_do_not_stop_a_consumer(kafka: str) -> None:
    """Another producer on the cluster may write any header bytes: the records still
    arrive, such values read as text with replacement characters, and records with equal
    headers read the same."""
    from aiokafka import AIOKafkaProducer

    topic = f"contract-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(kafka, partitions=1, session_timeout_ms=1000, topics=[topic])
    await bus.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        odd = [("type", b"t"), ("blank", None), ("binary", b"\xff\xfeok")]
        for value in (b"1", b"2"):
            await producer.send_and_wait(topic, value, key=b"k", headers=odd)
        await producer.send_and_wait(topic, b"3", key=b"k", headers=[("type", b"u")])
        consumer = bus.consumer([topic], f"g-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            got = await drain(consumer, 3)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
        await bus.stop()
    assert [dict(r.headers) for r in got] == [
        {"type": "t", "blank": "", "binary": "\ufffd\ufffdok"},
        {"type": "t", "blank": "", "binary": "\ufffd\ufffdok"},
        {"type": "u"},
    ]


async def test_kafka_publishes_each_key_where_aiokafkas_own_send_does(kafka: str) -> None:
    """`publish` builds record batches per partition itself; each key must still land in
    the partition aiokafka's `send` picks, so records published either way stay together,
    and more records than one batch holds stay in order."""
    from aiokafka import AIOKafkaProducer

    topic = f"contract-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(kafka, partitions=3, session_timeout_ms=1000, topics=[topic])
    await bus.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    keys = [f"contract-{i}" for i in range(12)]
    try:
        expected = {
            key: (await producer.send_and_wait(topic, b"probe", key=key.encode())).partition
            for key in keys
        }
        big = b"x" * 200_000  # several of them fill a batch of the bus's producer
        await bus.publish(
            topic, [Message(key=k, value=big + str(i).encode()) for i in range(12) for k in keys]
        )
        for key in keys:
            records = (await bus.read_all(topic, key))[1:]  # after the probe
            assert {r.partition for r in records} == {expected[key]}
            assert [r.value[len(big) :] for r in records] == [str(i).encode() for i in range(12)]
    finally:
        await producer.stop()
        await bus.stop()


async def test_a_consumer_cancelled_while_joining_its_group_is_stopped(kafka: str) -> None:
    """A service stopped within seconds of starting cancels its consumers while they still
    join their groups: each must still be stopped, or its client reconnects for ever."""
    from shared.consuming import run_consumer

    topic = f"contract-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(kafka, partitions=1, session_timeout_ms=6000, topics=[topic])  # joins in ~3 s
    await bus.start()
    consumer = bus.consumer([topic], f"g-{uuid.uuid4().hex[:6]}")

    async def handler(delivered: object) -> None:
        raise AssertionError("nothing is published")

    task = asyncio.create_task(run_consumer(bus, consumer, handler))
    try:
        await asyncio.sleep(1.0)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await bus.stop()
    assert consumer._consumer._closed


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "copied"])
async def test_kafka_records_straight_from_the_fetcher_or_copied(
    kafka: str, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """With the fast path installed, the bus's consumers get `Record`s made by aiokafka's
    fetcher itself, and a read of one key only that key's; without it (an aiokafka whose
    fetcher it does not know), records copied from aiokafka's `ConsumerRecord`s, a keyed
    read filtered after the copy: the same records either way. Any other consumer on the
    cluster still gets aiokafka's own."""
    from aiokafka import AIOKafkaConsumer, ConsumerRecord
    from aiokafka.consumer import fetcher

    from shared.bus import kafka as kafka_bus
    from shared.bus import kafka_records

    assert kafka_records.installable()
    aiokafkas_own = kafka_records._PartitionRecords.__mro__[1]
    monkeypatch.setattr(fetcher, "PartitionRecords", aiokafkas_own)  # as if never installed
    if direct:  # the copying path must then go unused
        assert kafka_records.install()
        monkeypatch.setattr(kafka_bus, "_record", lambda m: pytest.fail("copied"))
    else:
        monkeypatch.setattr(kafka_records, "install", lambda: False)
    topic = f"contract-{uuid.uuid4().hex[:8]}"
    bus = KafkaBus(kafka, partitions=2, session_timeout_ms=1000, topics=[topic])
    await bus.start()
    try:
        await bus.publish(topic, messages(40, keys=4))
        consumer = bus.consumer([topic], f"g-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            got = await drain(consumer, 40)
        finally:
            await consumer.stop()
        read = await bus.read_all(topic)
        keyed = {key: await bus.read_all(topic, key) for key in ("k0", "k3")}
        other = AIOKafkaConsumer(topic, bootstrap_servers=kafka, auto_offset_reset="earliest")
        await other.start()
        try:
            theirs = [m for ms in (await other.getmany(timeout_ms=5000)).values() for m in ms]
        finally:
            await other.stop()
    finally:
        await bus.stop()
    for records in (got, read):
        assert all(type(r) is Record for r in records)
        assert sorted(
            (r.partition, r.offset, r.key, r.value, r.headers) for r in records
        ) == sorted((m.partition, m.offset, m.key.decode(), m.value, {"type": "t"}) for m in theirs)
    for key, records in keyed.items():
        assert all(type(r) is Record for r in records)
        assert [(r.partition, r.offset, r.value) for r in records] == [
            (r.partition, r.offset, r.value)
            for r in sorted(read, key=operator.attrgetter("partition", "offset"))
            if r.key == key
        ]
        assert len(records) == 10
    assert theirs and all(type(m) is ConsumerRecord for m in theirs)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for m in theirs:
        by_partition[m.partition].append(m.offset)
    assert len(by_partition) == 2  # both partitions were read
    assert all(sorted(o) == list(range(len(o))) for o in by_partition.values())
    assert len(theirs) == 40


async def test_a_topic_created_later_gets_the_partitions_of_the_others(kafka: str) -> None:
    """A newer slapay that adds a topic, or a changed `SLAPAY_KAFKA_PARTITIONS`, must not give
    one topic another partition count: a contract's events of every topic meet in one
    consumer only while the counts are equal."""
    from aiokafka.admin import AIOKafkaAdminClient

    first, later = (f"contract-{uuid.uuid4().hex[:8]}" for _ in "ab")
    older = KafkaBus(kafka, partitions=2, topics=[first])
    await older.start()
    await older.stop()
    newer = KafkaBus(kafka, partitions=5, topics=[first, later])
    await newer.start()
    await newer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        described = await admin.describe_topics([first, later])
    finally:
        await admin.close()
    assert {t["topic"]: len(t["partitions"]) for t in described} == {first: 2, later: 2}
