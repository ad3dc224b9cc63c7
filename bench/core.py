"""What every scenario shares: configuration, results, timing helpers and progress lines."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from shared import heap

T = TypeVar("T")

DISTRIBUTED = "distributed"
EMBEDDED = "embedded"
STALL_S = 30.0

Rates = dict[str, float]
"""One repeat's result: measurement label → records per second."""
Step = tuple[str, Callable[[], Awaitable[float]]]
"""A labelled measurement that returns records per second."""


class BenchError(RuntimeError):
    """slapay or a baseline misbehaved (an error reply, lost records): its numbers would lie."""


class Unavailable(RuntimeError):
    """A broker or database a scenario needs is not there; the scenario is skipped."""


@dataclass(frozen=True)
class Config:
    """Sizes of one bench run (`--quick`, `--records`, `--repeat`, ...)."""

    kafka_records: int = 100_000
    embedded_records: int = 50_000
    repeat: int = 3
    http_batch: int = 500
    concurrency: int = 8
    fold_batch: int = 5_000
    """Records per fetch and per COPY in the fold baselines: `run_consumer`'s batch size."""

    def records(self, mode: str) -> int:
        if mode == "pure":  # the computation alone: a month of 1M measurements
            return min(1_000_000, self.embedded_records * 20)
        return self.kafka_records if mode == DISTRIBUTED else self.embedded_records


@dataclass(frozen=True)
class Scenario:
    """A slapay path and its baselines; `run_once(config, turn)` measures all of them once."""

    name: str
    mode: str
    slapay: str
    baselines: tuple[str, ...]
    run_once: Callable[[Config, int], Awaitable[Rates]]

    @property
    def title(self) -> str:
        return f"{self.name}/{self.mode}"


@dataclass
class Outcome:
    """Every repeat of one scenario, or why it has none."""

    scenario: Scenario
    records: int
    runs: dict[str, list[float]] = field(default_factory=dict)
    skipped: str | None = None
    failed: str | None = None

    def add(self, rates: Rates) -> None:
        for label, value in rates.items():
            self.runs.setdefault(label, []).append(value)

    def median(self, label: str) -> float | None:
        values = self.runs.get(label)
        return statistics.median(values) if values else None

    def ratio(self, baseline: str) -> float | None:
        ours, theirs = self.median(self.scenario.slapay), self.median(baseline)
        if ours is None or not theirs:
            return None
        return ours / theirs

    def ratios_per_repeat(self, baseline: str) -> list[float]:
        """slapay / baseline within each repeat. Both ran in the same repeat, against the same
        broker and database server, so a machine's drift between repeats (single runs of the
        ledger fold vary by up to a fifth) moves both sides and cancels out here."""
        ours, theirs = self.runs.get(self.scenario.slapay, []), self.runs.get(baseline, [])
        if len(ours) != len(theirs):
            return []  # a repeat lacks one side: no pairs to form
        return [a / b for a, b in zip(ours, theirs, strict=True) if b]


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rotated(steps: Sequence[T], turn: int) -> list[T]:
    """The same steps, starting one later on each repeat, so no side always runs first."""
    k = turn % len(steps)
    return [*steps[k:], *steps[:k]]


async def run_steps(
    steps: Sequence[Step], turn: int, before_each: Callable[[], Awaitable[None]] | None = None
) -> Rates:
    """Each step once, in `rotated` order; `before_each` runs untimed before every step."""
    rates: Rates = {}
    for label, step in rotated(steps, turn):
        if before_each is not None:
            await before_each()
        heap.settle()  # the bench's own data out of the collector's way, as a service's is
        rates[label] = await step()
        progress(f"  {label}: {rates[label]:,.0f}/s")
    return rates


async def timed(work: Awaitable[object]) -> float:
    """Seconds `work` took."""
    start = time.perf_counter()
    await work
    return time.perf_counter() - start


async def drain(step: Callable[[], Awaitable[int]], total: int) -> None:
    """Call `step` (which returns how many records it handled) until `total` were handled."""
    done, last = 0, time.monotonic()
    while done < total:
        handled = await step()
        now = time.monotonic()
        if handled:
            done, last = done + handled, now
        elif now - last > STALL_S:
            raise BenchError(f"stalled at {done:,}/{total:,} records")
    if done != total:
        raise BenchError(f"expected {total:,} records, got {done:,}")


TICK_S = 0.005
"""How often `loop_stalls` asks to be woken."""


@contextlib.asynccontextmanager
async def loop_stalls() -> AsyncIterator[list[float]]:
    """The event loop's stalls meanwhile, in seconds: how much later than asked a short
    sleep woke, each time (a list that fills as the block runs)."""
    stalls: list[float] = []

    async def watch() -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(TICK_S)
            stalls.append(time.perf_counter() - asked - TICK_S)

    watcher = asyncio.create_task(watch())
    try:
        yield stalls
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
