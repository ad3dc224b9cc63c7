"""The bus port: append records to topics, read them back in consumer groups.

Two adapters keep the same promises (docs/architecture.md, "Run modes"): `publish` returns only once
every record is durable (acks=all, or committed to the log database); records with the
same key keep their order; a group sees every record at least once, and resumes after its
last `commit()`. Consumers make their effects idempotent, so the outcome is exactly-once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable


class BusUnavailable(Exception):
    """The bus did not acknowledge in time; nothing may be reported as accepted."""


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Record(NamedTuple):
    """A record as a consumer sees it (a tuple: made for every record read, it is cheap)."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: Mapping[str, str]
    """Read-only: records with the same headers may share one mapping."""


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        """Next records after those already fetched; empty when none arrived in time."""
        ...

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        """Mark `records`, and every record fetched before them, as done for this group;
        without `records`, everything fetched so far. Committing a batch by its records
        lets a member fetch the next batch before the current one is applied."""
        ...


@runtime_checkable
class ReportsLag(Protocol):
    """A consumer that can tell how far behind it is (metrics only; optional)."""

    async def lag(self) -> dict[tuple[str, int], int]:
        """Records after this member's position, per (topic, partition) it reads."""
        ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the bus is unreachable."""
        ...

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        """Append durably, or raise `BusUnavailable`."""
        ...

    def consumer(self, topics: Sequence[str], group: str) -> Consumer: ...

    async def read_all(self, topic: str, key: str | None = None) -> list[Record]:
        """Every record of a topic from the beginning (auditing, replay); with `key`, only
        that key's records (one contract's), at a cost that follows them, not the topic."""
        ...

    def read_chunks(self, topic: str, key: str | None = None) -> AsyncIterator[list[Record]]:
        """`read_all` a chunk at a time as the records arrive: a reader works on one chunk
        while the next is on its way, and need not hold them all."""
        ...
