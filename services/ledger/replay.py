"""`slapay replay`: rebuild the ledger from the beginning of the bus into fresh tables and
check that every contract's chain reaches the same head hash as the live one.

Each live entry records the event that caused it (`inputs.cause`) and how far the
contract's measurements and reviews had been applied (`inputs`). Replay feeds each
contract's events to the very same fold, ordered so that every cause meets exactly the
state it met live; a difference in any amount, digest or order shows as another head.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import journal_store
from services.ledger.consumer import apply_delivered
from shared import consuming
from shared.bus import Bus
from shared.consuming import Delivered, Incoming, decode
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    JournalEntryPosted,
    TermsAgreed,
)
from shared.journal import GENESIS

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
    topics = {
        t: decode(await bus.read_all(t), measurements=True).delivered
        for t in (TOPIC_CONTRACTS, TOPIC_MEASUREMENTS, TOPIC_REVIEWS, TOPIC_JOURNAL)
    }
    live: dict[str, dict[str, dict[str, Any]]] = {}
    for d in topics[TOPIC_JOURNAL]:
        if isinstance(d, Delivered) and d.type == JournalEntryPosted.TYPE:
            entry = d.event.data["entry"]
            live.setdefault(entry["contract_id"], {})[entry["entry_id"]] = entry
    contracts = sorted({d.contract_id for t in topics.values() for d in t} - {""})
    outcomes = []
    for contract_id in contracts:
        mine = {t: [d for d in ds if d.contract_id == contract_id] for t, ds in topics.items()}
        entries = sorted(live.get(contract_id, {}).values(), key=lambda e: e["seq"])
        for run in schedule(mine, entries):
            for start in range(0, len(run), BATCH):
                await apply_delivered(engine, run[start : start + BATCH])
        head = await journal_store.head(engine, contract_id)
        outcomes.append(
            Outcome(contract_id, entries[-1]["hash"] if entries else GENESIS, head, len(entries))
        )
    return outcomes


def schedule(
    events: dict[str, list[Incoming]], entries: Sequence[dict[str, Any]]
) -> Iterator[list[Incoming]]:
    """Runs of one topic each, in the order that reproduces the live causes."""
    contracts = events[TOPIC_CONTRACTS]
    yield [d for d in contracts if d.type == TermsAgreed.TYPE]
    commands = [d for d in contracts if d.type != TermsAgreed.TYPE]
    streams = {
        t: sorted(events[t], key=lambda d: (d.partition, d.offset))
        for t in (TOPIC_MEASUREMENTS, TOPIC_REVIEWS)
    }
    done = {t: 0 for t in (*streams, TOPIC_CONTRACTS)}

    def upto(topic: str, cut: dict[str, Any]) -> list[Incoming]:
        stream, start = streams[topic], done[topic]
        end = start
        while end < len(stream) and stream[end].offset <= cut.get(
            str(stream[end].partition), {}
        ).get("offset", -1):
            end += 1
        done[topic] = end
        return stream[start:end]

    def commands_upto(offset: int) -> list[Incoming]:
        start = end = done[TOPIC_CONTRACTS]
        while end < len(commands) and commands[end].offset <= offset:
            end += 1
        done[TOPIC_CONTRACTS] = end
        return commands[start:end]

    seen_causes: set[tuple[str, int, int]] = set()
    for entry in entries:
        inputs = entry.get("inputs", {})
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
        yield upto(first, inputs.get(first, {}))
        yield upto(second, inputs.get(second, {}))
        if cause["topic"] == TOPIC_CONTRACTS:
            yield commands_upto(cause["offset"])
    for topic, stream in streams.items():
        yield stream[done[topic] :]
    yield commands[done[TOPIC_CONTRACTS] :]
