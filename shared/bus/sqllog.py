"""`SqlLogBus`: a durable append-only log table with per-group offsets (embedded mode).

Runs on SQLite (the default, no server to install) and on Postgres. Appends to one topic
are serialised (SQLite's single writer; a transaction-scoped advisory lock on Postgres), so
ids grow in commit order and a reader never skips a record committed late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db, jsonutil
from shared.bus import BusUnavailable, Message, Record
from shared.db import UtcDateTime

READ_CHUNK = 10_000
"""Records per chunk of `read_chunks`."""

metadata = MetaData()
log = Table(
    "bus_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("topic", String(200), nullable=False, index=True),
    Column("key", String(200), nullable=False),
    Column("headers", Text, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("appended_at", UtcDateTime, server_default=func.now(), nullable=False),
    Index("ix_bus_log_topic_key", "topic", "key", "id"),
)
offsets = Table(
    "bus_offsets",
    metadata,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
)


class SqlLogBus:
    """The bus as two tables in an SQL database."""

    def __init__(self, url: str, poll_interval_s: float = 0.05) -> None:
        self._url = url
        self._poll = poll_interval_s
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqlLogBus used before start()")
        return self._engine

    async def start(self) -> None:
        self._engine = db.create_engine(self._url)
        await db.create_schema(self._engine, metadata)

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self) -> None:
        await db.ping(self.engine)

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if not messages:
            return
        rows = [
            {
                "topic": topic,
                "key": m.key,
                "headers": jsonutil.dumps(m.headers).decode(),
                "value": m.value,
            }
            for m in messages
        ]
        try:
            async with self.engine.begin() as conn:
                if db.is_postgres(self.engine):
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:topic))"), {"topic": topic}
                    )
                await conn.execute(log.insert(), rows)
        except (SQLAlchemyError, OSError) as exc:
            raise BusUnavailable(f"log append failed: {exc}") from exc

    def consumer(self, topics: Sequence[str], group: str) -> SqlLogConsumer:
        return SqlLogConsumer(self, list(topics), group)

    async def read_all(self, topic: str, key: str | None = None) -> list[Record]:
        return [record async for chunk in self.read_chunks(topic, key) for record in chunk]

    async def read_chunks(self, topic: str, key: str | None = None) -> AsyncIterator[list[Record]]:
        query = select(*_READ).where(log.c.topic == topic).order_by(log.c.id)
        if key is not None:  # one contract's records, by the (topic, key, id) index
            query = query.where(log.c.key == key)
        async with self.engine.connect() as conn:
            result = await conn.stream(query)
            async for rows in result.partitions(READ_CHUNK):
                yield [_record(*row) for row in rows]


_READ = (log.c.id, log.c.topic, log.c.key, log.c.headers, log.c.value)
"""The columns a record is read from, in `_record`'s order (`appended_at` is not needed)."""

_HEADERS: dict[str, dict[str, str]] = {}
"""Decoded headers by their stored text: the records of one publish share theirs (event type
and trace), so each distinct text is parsed once, not once per record."""

_new_tuple = tuple.__new__  # as `shared.bus.kafka._record`: made for every record read


def _record(id_: int, topic: str, key: str, headers: str, value: bytes) -> Record:
    """A record from its row, unpacked by position: reading each field of an SQLAlchemy row
    by name, and parsing its headers anew, took most of the time of reading the log."""
    found = _HEADERS.get(headers)
    if found is None:
        if len(_HEADERS) >= 4096:
            _HEADERS.clear()
        found = _HEADERS[headers] = jsonutil.loads(headers)
    return _new_tuple(Record, (topic, 0, id_, key, bytes(value), found))


class SqlLogConsumer:
    """One member of a group; a group reads each topic in log order."""

    def __init__(self, bus: SqlLogBus, topics: list[str], group: str) -> None:
        self._bus, self._topics, self._group = bus, topics, group
        self._fetched: dict[str, int] = {}
        self._committed: dict[str, int] = {}

    async def start(self) -> None:
        async with self._bus.engine.connect() as conn:
            result = await conn.execute(
                select(offsets.c.topic, offsets.c.position).where(offsets.c.group_id == self._group)
            )
            stored = {row.topic: row.position for row in result}
        self._committed = {t: stored.get(t, 0) for t in self._topics}
        self._fetched = dict(self._committed)

    async def stop(self) -> None:
        return None

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        deadline = time.monotonic() + timeout_s
        while True:
            records = await self._select(max_records)
            if records or time.monotonic() >= deadline:
                break
            await asyncio.sleep(self._bus._poll)
        for record in records:
            self._fetched[record.topic] = record.offset
        return records

    async def _select(self, limit: int) -> list[Record]:
        after = or_(*(and_(log.c.topic == t, log.c.id > p) for t, p in self._fetched.items()))
        query = select(*_READ).where(after).order_by(log.c.id).limit(limit)
        async with self._bus.engine.connect() as conn:
            return [_record(*row) for row in await conn.execute(query)]

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records appended after this group's fetched position, per topic (partition 0)."""
        after = or_(*(and_(log.c.topic == t, log.c.id > p) for t, p in self._fetched.items()))
        query = select(log.c.topic, func.count()).where(after).group_by(log.c.topic)
        async with self._bus.engine.connect() as conn:
            counts = {row[0]: row[1] for row in await conn.execute(query)}
        return {(t, 0): counts.get(t, 0) for t in self._topics}

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        reached = self._fetched if records is None else _last_ids(records)
        changed = {t: p for t, p in reached.items() if p > self._committed.get(t, 0)}
        if not changed:
            return
        rows = [{"group_id": self._group, "topic": t, "position": p} for t, p in changed.items()]
        engine = self._bus.engine
        statement = db.upsert(engine, offsets).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[offsets.c.group_id, offsets.c.topic],
            set_={"position": statement.excluded.position},
        )
        async with engine.begin() as conn:
            await conn.execute(statement)
        self._committed.update(changed)


def _last_ids(records: Sequence[Record]) -> dict[str, int]:
    """The log position reached in each topic by `records` (a record's offset is its id)."""
    reached: dict[str, int] = {}
    for record in records:
        reached[record.topic] = max(reached.get(record.topic, 0), record.offset)
    return reached
