"""Hand-written fakes for service tests (integration tests use the real adapters)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

from shared.bus import BusUnavailable, Message, Record


class InMemoryBus:
    """Keeps every topic as a list; consumers read from a per-group position."""

    def __init__(self) -> None:
        self.topics: dict[str, list[Record]] = defaultdict(list)
        self.down = False

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ping(self) -> None:
        if self.down:
            raise BusUnavailable("fake bus is down")

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        if self.down:
            raise BusUnavailable("fake bus is down")
        log = self.topics[topic]
        start = len(log)  # offsets 0, 1, 2, ... (len(log) grows while extending)
        log.extend(
            Record(topic, 0, start + i, m.key, m.value, dict(m.headers))
            for i, m in enumerate(messages)
        )

    def consumer(self, topics: Sequence[str], group: str) -> InMemoryConsumer:
        return InMemoryConsumer(self, list(topics))

    async def read_all(self, topic: str, key: str | None = None) -> list[Record]:
        return [r for r in self.topics[topic] if key is None or r.key == key]

    async def read_chunks(self, topic: str, key: str | None = None) -> AsyncIterator[list[Record]]:
        found = await self.read_all(topic, key)
        if found:
            yield found


class InMemoryConsumer:
    def __init__(self, bus: InMemoryBus, topics: list[str]) -> None:
        self.bus, self.topics = bus, topics
        self.positions = dict.fromkeys(topics, 0)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        out = self._take(max_records)
        if not out:
            await asyncio.sleep(min(timeout_s, 0.05))  # like a real bus: wait, don't spin
        return out

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for topic in self.topics:
            new = self.bus.topics[topic][self.positions[topic] :][: max_records - len(out)]
            self.positions[topic] += len(new)
            out.extend(new)
        return out

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        return None
