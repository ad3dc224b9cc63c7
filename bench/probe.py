"""A bus wrapper that lets the bench watch the ledger's own fold worker from outside.

`CountingBus` hands out the real bus's consumers, wrapped so that the bench knows when the
group was joined (the clock starts) and when the `total`-th record was committed (it stops).
The worker under test stays exactly the ledger's, whatever it does between fetch and commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from bench.core import STALL_S, BenchError
from shared.bus import Bus, Consumer, Message, Record


class CountingBus:
    """`Bus` that delegates to `inner`, counting what its consumers fetch and commit."""

    def __init__(self, inner: Bus, total: int) -> None:
        self._inner, self.total = inner, total
        self.fetched = self.committed = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.progress_at = time.monotonic()
        self.done = asyncio.Event()

    async def start(self) -> None:
        await self._inner.start()

    async def stop(self) -> None:
        await self._inner.stop()

    async def ping(self) -> None:
        await self._inner.ping()

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        await self._inner.publish(topic, messages)

    def consumer(self, topics: Sequence[str], group: str) -> Consumer:
        return CountingConsumer(self._inner.consumer(topics, group), self)

    async def read_all(self, topic: str, key: str | None = None) -> list[Record]:
        return await self._inner.read_all(topic, key)

    async def finished(self, worker: asyncio.Task[None]) -> float:
        """Seconds from the group join to the commit of the `total`-th record, while
        `worker` runs; raises if it stops or stalls first."""
        while not self.done.is_set():
            waiter = asyncio.create_task(self.done.wait())
            await asyncio.wait({worker, waiter}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if worker.done():
                raise BenchError(f"the fold worker stopped early: {worker.exception()!r}")
            if not self.done.is_set() and time.monotonic() - self.progress_at > STALL_S:
                raise BenchError(f"the fold stalled at {self.committed:,}/{self.total:,} records")
        assert self.started_at is not None and self.finished_at is not None
        return self.finished_at - self.started_at


class CountingConsumer:
    """`Consumer` that reports its join, fetches and commits to its `CountingBus`."""

    def __init__(self, inner: Consumer, bus: CountingBus) -> None:
        self._inner, self._bus = inner, bus
        self._uncommitted = 0

    async def start(self) -> None:
        await self._inner.start()
        self._bus.started_at = time.perf_counter()
        self._bus.progress_at = time.monotonic()

    async def stop(self) -> None:
        await self._inner.stop()

    async def fetch(self, max_records: int = 5000, timeout_s: float = 0.5) -> list[Record]:
        records = await self._inner.fetch(max_records=max_records, timeout_s=timeout_s)
        self._uncommitted += len(records)
        self._bus.fetched += len(records)
        return records

    async def commit(self, records: Sequence[Record] | None = None) -> None:
        await self._inner.commit(records)
        done = self._uncommitted if records is None else len(records)
        bus = self._bus
        bus.committed += done
        self._uncommitted -= done
        bus.progress_at = time.monotonic()
        if bus.committed >= bus.total and not bus.done.is_set():
            bus.finished_at = time.perf_counter()
            bus.done.set()
