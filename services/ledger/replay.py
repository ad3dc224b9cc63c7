"""`slapay replay`: rebuild the ledger from the beginning of the bus into fresh tables and
check that every contract's chain reaches the same head hash as the live one.

Each live entry records the event that caused it (`inputs.cause`) and how far the
contract's measurements and reviews had been applied (`inputs`). Replay feeds each
contract's events to the very same fold, ordered so that every cause meets exactly the
state it met live; a difference in any amount, digest or order shows as another head.

Contracts are replayed one at a time, each reading only its own records (`read_chunks`
by key) as a stream: memory holds one chunk of events and the contract's journal, never
the bus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store
from services.ledger.fold.apply import apply_delivered
from shared import consuming
from shared.bus import Bus
from shared.consuming import Delivered, decode
from shared.core.journal import GENESIS, JournalEntry
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    JournalEntryPosted,
    TermsAgreed,
)
from shared.measured import Incoming, decode_measurements

BATCH = consuming.BATCH
"""Events per transaction, as the live fold applies them."""


@dataclass(frozen=True)
class Outcome:
    contract_id: str
    live_head: str
    replayed_head: str
    entries: int

    @property
    def matches(self) -> bool:
        return self.live_head == self.replayed_head


async def replay(bus: Bus, engine: AsyncEngine) -> list[Outcome]:
    """Replay every contract into `engine` (fresh tables) and compare chain heads."""
    commands: dict[str, list[Incoming]] = {}
    for d in decode(await bus.read_all(TOPIC_CONTRACTS)).delivered:
        if d.contract_id:
            commands.setdefault(d.contract_id, []).append(d)
    return [await replay_contract(bus, engine, c, commands[c]) for c in sorted(commands)]


async def replay_contract(
    bus: Bus, engine: AsyncEngine, contract_id: str, contract_events: Sequence[Incoming]
) -> Outcome:
    live: dict[str, JournalEntry] = {}
    for d in decode(await bus.read_all(TOPIC_JOURNAL, contract_id)).delivered:
        if isinstance(d, Delivered) and d.type == JournalEntryPosted.TYPE:
            entry = JournalEntryPosted.model_validate(d.event.data).entry
            live.setdefault(entry.entry_id, entry)
    entries = sorted(live.values(), key=lambda e: e.seq)
    streams = {
        topic: _Stream(bus, topic, contract_id) for topic in (TOPIC_MEASUREMENTS, TOPIC_REVIEWS)
    }
    for run in _schedule(contract_events, streams, entries):
        async for batch in run:
            await apply_delivered(engine, batch, keyring=None)  # scratch tables
    head = await journal_store.head(engine, contract_id)
    return Outcome(contract_id, entries[-1].hash if entries else GENESIS, head, len(entries))


class _Stream:
    """One contract's events of one topic, decoded a chunk at a time, in bus order."""

    def __init__(self, bus: Bus, topic: str, contract_id: str) -> None:
        self._chunks = bus.read_chunks(topic, contract_id)
        self._pending: deque[Incoming] = deque()
        self._done = False

    async def _fill(self) -> bool:
        while not self._pending and not self._done:
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._done = True
                break
            self._pending = deque(decode_measurements(chunk).delivered)
        return bool(self._pending)

    async def upto(self, cut: Mapping[str, Any] | None) -> AsyncIterator[list[Incoming]]:
        """Batches of the events at or before `cut` (a partition → offset map); all that is
        left when `cut` is None."""
        batch: list[Incoming] = []
        while await self._fill():
            first = self._pending[0]
            if cut is not None and first.offset > cut.get(str(first.partition), {}).get(
                "offset", -1
            ):
                break
            batch.append(self._pending.popleft())
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


async def _batches(events: Sequence[Incoming]) -> AsyncIterator[list[Incoming]]:
    for start in range(0, len(events), BATCH):
        yield list(events[start : start + BATCH])


def _schedule(
    contract_events: Sequence[Incoming],
    streams: Mapping[str, _Stream],
    entries: Sequence[JournalEntry],
) -> list[AsyncIterator[list[Incoming]]]:
    """Runs of one topic each, in the order that reproduces the live causes."""
    runs: list[AsyncIterator[list[Incoming]]] = [
        _batches([d for d in contract_events if d.type == TermsAgreed.TYPE])
    ]
    commands = [d for d in contract_events if d.type != TermsAgreed.TYPE]
    done = 0
    seen_causes: set[tuple[str, int, int]] = set()
    for entry in entries:
        inputs = entry.inputs
        cause = inputs.get("cause")
        if (
            not cause
            or (key := (cause["topic"], cause["partition"], cause["offset"])) in seen_causes
        ):
            continue
        seen_causes.add(key)
        first, second = (
            (TOPIC_MEASUREMENTS, TOPIC_REVIEWS)
            if cause["topic"] == TOPIC_REVIEWS
            else (TOPIC_REVIEWS, TOPIC_MEASUREMENTS)
        )
        runs.append(streams[first].upto(inputs.get(first, {})))
        runs.append(streams[second].upto(inputs.get(second, {})))
        if cause["topic"] == TOPIC_CONTRACTS:
            end = done
            while end < len(commands) and commands[end].offset <= cause["offset"]:
                end += 1
            runs.append(_batches(commands[done:end]))
            done = end
    runs += [streams[TOPIC_MEASUREMENTS].upto(None), streams[TOPIC_REVIEWS].upto(None)]
    runs.append(_batches(commands[done:]))
    return runs
