"""`KafkaBus` on aiokafka: acks=all, key = contract_id, manual commits, consumer groups.

Kafka's idempotent producer is not assumed (some Kafka-protocol brokers lack it), so a
retried send may duplicate a record; consumers dedupe by `event_id`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from shared.bus import BusUnavailable, Message, Record, kafka_records
from shared.bus.kafka_records import as_is, record_of
from shared.events import ALL_TOPICS

FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that finds no data (aiokafka's default: 500 ms).
While a partition still has records buffered, aiokafka leaves it out of the next fetch; that
fetch then asks only for quiet partitions (the ledger reads busy measurements beside quiet
contracts and reviews) and waits out this time before the busy one is fetched again: the
default stalls the fold, far shorter waits poll so often that it slows again
(docs/benchmarks.md)."""

FETCH_SLICE = 1_000
"""Records aiokafka parses per step of `KafkaConsumer.fetch`. A consumer reads its next batch
while it applies one (`shared.consuming`); 10,000 parsed in one go would hold the thread for
tens of milliseconds while the applying batch's database replies wait."""

READ_WAIT_MS = 50
"""How long a read from the beginning (`read_chunks`) waits for its next fetch before it looks
at its position again; a read of one key can go on past a fetch that held none of its
records, which returns nothing at all."""

MAX_PARTITION_FETCH_BYTES = 4 * 1024 * 1024
"""Bytes one fetch may return per partition (aiokafka's default: 1 MiB). A consumer's batch
is what its fetches have buffered, and aiokafka fetches a partition again only once its
buffer is drained: at 1 MiB, about 2,200 measurements a partition, the ledger's batches
fell short of the records asked for, each paying the batch's fixed cost (books, aggregates,
two commits). A consumer buffers at most this much per partition it owns."""


class KafkaBus:
    """The bus on a Kafka-protocol cluster."""

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 3,
        session_timeout_ms: int = 10_000,
        publish_timeout_s: float = 10.0,
        topics: Sequence[str] = ALL_TOPICS,
    ) -> None:
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._session_timeout_ms = session_timeout_ms
        self._publish_timeout_s = publish_timeout_s
        self._topics = list(topics)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await self._ensure_topics()
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            max_batch_size=1 << 20,
            request_timeout_ms=int(self._publish_timeout_s * 1000),
        )
        await producer.start()
        self._producer = producer

    async def _ensure_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in self._topics if t not in existing]
            if not missing:
                return
            partitions = await _partitions_of(admin, [t for t in self._topics if t in existing])
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=partitions or self._partitions,
                            replication_factor=1,
                            topic_configs={"retention.ms": "-1"},
                        )
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass
        finally:
            await admin.close()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaBus used before start()")
        return self._producer

    async def ping(self) -> None:
        await asyncio.wait_for(self.producer.partitions_for(self._topics[0]), timeout=5)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await asyncio.gather(*await self._send_batches(topic, messages))
        except (KafkaError, TimeoutError) as exc:
            raise BusUnavailable(f"broker did not acknowledge: {exc!r}") from exc

    async def _send_batches(self, topic: str, messages: Sequence[Message]) -> list[Any]:
        """Queue the messages as record batches, one per partition (more where one fills
        up), in order: a future per batch, where `send` makes one per message. Each key
        goes to the partition `send` would choose (`_PARTITIONER`)."""
        producer = self.producer
        numbers = sorted(await producer.partitions_for(topic))
        open_batches: dict[int, Any] = {}
        partitions: dict[str, int] = {}  # a batch names few keys, hashed once each
        sent = []
        for m in messages:
            key = m.key.encode()
            partition = partitions.get(m.key)
            if partition is None:
                partition = partitions[m.key] = _PARTITIONER(key, numbers, numbers)
            headers = [(k, v.encode()) for k, v in m.headers.items()]
            batch = open_batches.get(partition)
            if batch is None:
                batch = open_batches[partition] = producer.create_batch()
            if batch.append(key=key, value=m.value, timestamp=None, headers=headers) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[partition] = producer.create_batch()
                batch.append(key=key, value=m.value, timestamp=None, headers=headers)
        for partition, batch in open_batches.items():
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        return sent

    def consumer(self, topics: Sequence[str], group: str) -> KafkaConsumer:
        return KafkaConsumer(
            AIOKafkaConsumer(
                *topics,
                bootstrap_servers=self._bootstrap,
                group_id=group,
                key_deserializer=as_is,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=max(100, self._session_timeout_ms // 5),
                max_poll_records=10_000,
                fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
                # Range keeps partition N of every topic on one member: with equal partition
                # counts, all of a contract's events (key = contract_id) meet in one process.
                partition_assignment_strategy=(RangePartitionAssignor,),
            )
        )

    async def read_all(self, topic: str, key: str | None = None) -> list[Record]:
        return [record async for chunk in self.read_chunks(topic, key) for record in chunk]

    async def read_chunks(self, topic: str, key: str | None = None) -> AsyncIterator[list[Record]]:
        """Up to the end offsets as they were when reading began. With `key`, only the
        partition the producer's partitioner puts that key in is read: every record with
        that key is there, in order; the others are passed over unbuilt where the fast path
        is in place (`kafka_records`)."""
        wanted = key.encode() if key is not None else None
        reader = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            group_id=None,
            key_deserializer=as_is if wanted is None else kafka_records.OnlyKey(wanted),
            max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        )
        kafka_records.install()
        try:
            await reader.start()
            numbers = await _partitions(reader, topic)
            if wanted is not None:
                numbers = [_PARTITIONER(wanted, numbers, numbers)]
            # The end offsets first: asked once fetching has begun, the answer waits behind
            # a fetch that finds nothing (a broker answers a connection's requests in order,
            # and holds an empty fetch up to its wait), and a partition never written to
            # needs no fetch at all.
            ends = await reader.end_offsets([TopicPartition(topic, p) for p in numbers])
            partitions = [tp for tp, end in ends.items() if end > 0]
            if not partitions:
                return
            reader.assign(partitions)
            await reader.seek_to_beginning(*partitions)
            while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                # A fetch whose records were all another key's returns none: wait briefly,
                # then look at the position again, which that fetch moved on.
                chunk = _records(await reader.getmany(timeout_ms=READ_WAIT_MS))
                if key is not None:
                    chunk = [record for record in chunk if record.key == key]
                if chunk:
                    yield chunk
        finally:
            await reader.stop()


async def _partitions_of(admin: AIOKafkaAdminClient, topics: list[str]) -> int | None:
    """The partition count slapay's existing topics have (the most, should they differ). A
    topic created later gets the same, whatever `SLAPAY_KAFKA_PARTITIONS` says now: a
    contract's events of every topic meet in one consumer only while the counts are equal."""
    if not topics:
        return None
    described = await admin.describe_topics(topics)
    return max((len(t["partitions"]) for t in described if t["partitions"]), default=None)


_PARTITIONER = DefaultPartitioner()
"""The producer's own partitioner (murmur2 of the key), so a key's partition can be found."""


async def _partitions(reader: AIOKafkaConsumer, topic: str) -> list[int]:
    found = reader.partitions_for_topic(topic)
    if found is None:
        await reader._client.force_metadata_update()
        found = reader.partitions_for_topic(topic)
    return sorted(found or [])


def _record(m: ConsumerRecord[bytes, bytes]) -> Record:
    return record_of(m, m)  # a ConsumerRecord names its own topic and partition


def _records(fetched: dict[TopicPartition, list[Any]]) -> list[Record]:
    """The records of a `getmany`: `Record`s already (a fast path made them), or
    `ConsumerRecord`s to copy."""
    found = list(itertools.chain.from_iterable(fetched.values()))
    if found and type(found[0]) is not Record:
        return [_record(m) for m in found]
    return cast("list[Record]", found)


class KafkaConsumer:
    """A group member; `commit()` commits the positions after the records fetched."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        """Up to `max_records`, parsed `FETCH_SLICE` at a time: between slices the event loop
        runs other tasks (a consumer reads ahead while it applies the batch before)."""
        records: list[Record] = []
        while len(records) < max_records:
            if records:
                await asyncio.sleep(0)
            batch = await self._consumer.getmany(
                timeout_ms=0 if records else int(timeout_s * 1000),
                max_records=min(FETCH_SLICE, max_records - len(records)),
            )
            got = _records(batch)
            if not got:
                break
            records.extend(got)
        return records

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        if records is None:
            await self._consumer.commit()
            return
        # Only partitions still ours: records of one revoked meanwhile are the new owner's
        # to redo (effects are idempotent), and Kafka refuses a commit for it anyway.
        assigned = self._consumer.assignment()
        last: dict[tuple[str, int], int] = {}
        for record in records:
            place = (record.topic, record.partition)
            if last.get(place, -1) < record.offset:
                last[place] = record.offset
        positions = {
            tp: offset + 1
            for (t, p), offset in last.items()
            if (tp := TopicPartition(t, p)) in assigned
        }
        if positions:
            await self._consumer.commit(positions)

    async def lag(self) -> dict[tuple[str, int], int]:
        """End offset minus position, per assigned partition (a metric). The end offset is
        the high watermark of the last fetch response; the broker is asked only for
        partitions not fetched yet."""
        assigned = list(self._consumer.assignment())
        ends = {tp: self._consumer.highwater(tp) for tp in assigned}
        unknown = [tp for tp, end in ends.items() if end is None]
        if unknown:
            ends.update(await self._consumer.end_offsets(unknown))
        return {
            (tp.topic, tp.partition): max(0, end - await self._consumer.position(tp))
            for tp, end in ends.items()
            if end is not None
        }
