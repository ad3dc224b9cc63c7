"""What the bus holds for one contract, read the way the ledger reads it: its terms, its
measurements, ratings and ticket events each once in bus order, its journal entries and
final statements, and its disputes as the ledger settled them.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from shared import heap
from shared.audit.origins import Origins
from shared.bus import Bus, Record
from shared.consuming import Delivered
from shared.core.journal import JournalEntry
from shared.core.payment import Observation, Rating, Release, TicketRecord
from shared.core.review_score import review_source
from shared.core.terms import Terms
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    TOPIC_TICKETS,
    DisputeOpened,
    DisputeResolved,
    Envelope,
    JournalEntryPosted,
    ReviewLineReleased,
    ReviewSubmitted,
    StatementFinalized,
    TermsAgreed,
    TicketEventRecorded,
)
from shared.measured import DeliveredMeasurement, Incoming, decode_measurements

E = TypeVar("E", Observation, Rating, Release, TicketRecord)
Placed = tuple[int, int, E]
"""An event with its place on the bus: (partition, offset, event)."""


@dataclass(frozen=True)
class Dispute:
    """A dispute as the ledger holds it: the first `dispute.opened` with its id, and the
    first `dispute.resolved` after it (the ledger ignores any later one)."""

    dispute_id: str
    period: str
    line_id: str
    decision: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Journal:
    """A contract's journal as published: each entry once (the first copy of its id), in
    chain order; every later copy of an id with other content; the final statements; and
    whatever was published as an entry but lacks an entry's fields."""

    entries: list[JournalEntry] = field(default_factory=list)
    conflicts: list[JournalEntry] = field(default_factory=list)
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)
    malformed: list[Any] = field(default_factory=list)


@dataclass
class History:
    """One contract's events as the bus holds them."""

    contract_id: str
    terms: list[Terms] = field(default_factory=list)
    measurements: list[Placed[Observation]] = field(default_factory=list)
    ratings: list[Placed[Rating]] = field(default_factory=list)
    releases: list[Placed[Release]] = field(default_factory=list)
    tickets: list[Placed[TicketRecord]] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal)
    disputes: dict[str, Dispute] = field(default_factory=dict)
    agreed: list[datetime] = field(default_factory=list)
    """When each terms version was agreed, in version order."""
    origins: Origins = field(default_factory=Origins)

    @property
    def entries(self) -> list[JournalEntry]:
        return self.journal.entries

    @property
    def finals(self) -> dict[str, dict[str, Any]]:
        return self.journal.finals


def _events(records: Iterable[Record], contract_id: str) -> Iterable[tuple[Record, Envelope]]:
    for record in records:
        if record.key != contract_id:
            continue
        try:
            yield record, Envelope.from_json(record.value)
        except (ValidationError, ValueError):
            continue  # unreadable records are on the dead-letter topic, not in any statement


def _mine(records: Iterable[Record], contract_id: str) -> list[Incoming]:
    """The contract's events among `records` (its key and its envelope), read as the ledger
    reads them (`decode`): what the ledger refused is not counted here either."""
    keyed = [record for record in records if record.key == contract_id]
    return [d for d in decode_measurements(keyed).delivered if d.contract_id == contract_id]


def _observations(
    records: Iterable[Record], contract_id: str, origins: Origins
) -> list[Placed[Observation]]:
    """The contract's measurements among `records`, in their order, repeats and all; where
    they came from goes into `origins`."""
    mine = _mine(records, contract_id)
    origins.add(mine)
    return [
        (m.partition, m.offset, Observation(m.event_id, m.kpi, m.number, m.occurred_at, m.party))
        for m in mine
        if isinstance(m, DeliveredMeasurement)
    ]


def _ratings(records: Iterable[Record], contract_id: str) -> list[Placed[Rating]]:
    """The contract's ratings among `records`, in their order, repeats and all."""
    found = []
    for d in _mine(records, contract_id):
        if isinstance(d, Delivered) and d.type == ReviewSubmitted.TYPE:
            review = ReviewSubmitted.model_validate(d.event.data)
            rating = Rating(
                str(d.event.event_id),
                review.reviewer_pseudonym,
                review.rating,
                d.event.occurred_at,
                d.offset,
                source=review_source(d.event.source),
                flags=tuple(review.flags),
            )
            found.append((d.partition, d.offset, rating))
    return found


def _releases(records: Iterable[Record], contract_id: str) -> list[Placed[Release]]:
    """The contract's releases of held review lines among `records`, in their order."""
    found = []
    for d in _mine(records, contract_id):
        if isinstance(d, Delivered) and d.type == ReviewLineReleased.TYPE:
            released = ReviewLineReleased.model_validate(d.event.data)
            release = Release(str(d.event.event_id), released.period, d.offset)
            found.append((d.partition, d.offset, release))
    return found


def _tickets(records: Iterable[Record], contract_id: str) -> list[Placed[TicketRecord]]:
    """The contract's ticket events among `records`, in their order, repeats and all."""
    found = []
    for d in _mine(records, contract_id):
        if isinstance(d, Delivered) and d.type == TicketEventRecorded.TYPE:
            event = TicketEventRecorded.model_validate(d.event.data)
            record = TicketRecord(
                str(d.event.event_id), event.ticket_id, event.type, event.at, event.priority
            )
            found.append((d.partition, d.offset, record))
    return found


def _first_in_bus_order(placed: Iterable[Placed[E]]) -> list[Placed[E]]:
    """In bus order (partition, then offset), and each event id only where it came first."""
    seen: set[str] = set()
    kept = []
    for item in sorted(placed, key=_BUS_PLACE):
        if item[2].event_id not in seen:
            seen.add(item[2].event_id)
            kept.append(item)
    return kept


_BUS_PLACE = operator.itemgetter(0, 1)


def history(
    contract_id: str,
    contracts: Iterable[Record],
    measurements: Iterable[Record],
    journal: Iterable[Record],
    reviews: Iterable[Record] = (),
    tickets: Iterable[Record] = (),
) -> History:
    found = History(contract_id)
    contract_events = _mine(sorted(contracts, key=_RECORD_PLACE), contract_id)
    versions: dict[int, tuple[Terms, datetime]] = {}
    for d in contract_events:
        if isinstance(d, Delivered) and d.type == TermsAgreed.TYPE:
            agreed = TermsAgreed.model_validate(d.event.data)
            terms = Terms.model_validate(agreed.terms)
            versions.setdefault(agreed.version, (terms, d.event.recorded_at))
    found.terms = [versions[v][0] for v in sorted(versions)]
    found.agreed = [versions[v][1] for v in sorted(versions)]
    found.disputes = disputes(contract_events)
    placed = _observations(measurements, contract_id, found.origins)
    found.measurements = _first_in_bus_order(placed)
    reviews = list(reviews)
    found.ratings = _first_in_bus_order(_ratings(reviews, contract_id))
    found.releases = _first_in_bus_order(_releases(reviews, contract_id))
    found.tickets = _first_in_bus_order(_tickets(tickets, contract_id))
    found.journal = read_journal_records(journal, contract_id)
    return found


_RECORD_PLACE = operator.attrgetter("partition", "offset")


def disputes(events: Iterable[Incoming]) -> dict[str, Dispute]:
    """The contract's disputes, folded in bus order as the ledger folds them: a second
    `dispute.opened` with a known id changes nothing, nor does a `dispute.resolved` of a
    dispute not opened yet or already resolved."""
    found: dict[str, Dispute] = {}
    for d in events:
        if not isinstance(d, Delivered):
            continue
        payload = d.event.payload()
        if isinstance(payload, DisputeOpened):
            found.setdefault(
                payload.dispute_id,
                Dispute(payload.dispute_id, payload.period, payload.line_id),
            )
        elif isinstance(payload, DisputeResolved):
            known = found.get(payload.dispute_id)
            if known is not None and known.decision is None:
                found[payload.dispute_id] = replace(
                    known, decision=payload.decision, amount=payload.amount
                )
    return found


def read_journal_records(records: Iterable[Record], contract_id: str) -> Journal:
    """The contract's entries and final statements among the journal topic's records."""
    entries: dict[str, JournalEntry] = {}
    conflicts: list[JournalEntry] = []
    finals: dict[str, dict[str, Any]] = {}
    malformed: list[Any] = []
    for _, event in _events(sorted(records, key=_RECORD_PLACE), contract_id):
        if event.contract_id != contract_id:
            continue
        if event.type == JournalEntryPosted.TYPE:
            published = event.data.get("entry")
            entry = JournalEntry.published(published)
            if entry is None:
                malformed.append(published)
                continue
            first = entries.setdefault(entry.entry_id, entry)
            if first.hash != entry.hash:
                conflicts.append(entry)
        elif event.type == StatementFinalized.TYPE:
            statement = event.data.get("statement")
            if isinstance(statement, dict) and isinstance(statement.get("period"), str):
                finals.setdefault(statement["period"], statement)
    ordered = sorted(entries.values(), key=lambda e: e.seq)
    return Journal(ordered, conflicts, finals, malformed)


async def read_journal(bus: Bus, contract_id: str) -> Journal:
    """The contract's journal as the bus holds it now."""
    return read_journal_records(await bus.read_all(TOPIC_JOURNAL, contract_id), contract_id)


async def read_history(bus: Bus, contract_id: str) -> History:
    """Read the contract's history from the beginning of the bus: only its own records (its
    key; on Kafka, the one partition the key maps to), so the cost follows the contract, not
    the bus.

    The journal is read first: every entry read then names (in its cut) only events already
    on the bus, which the reads that follow see. Those run at once; measurements are parsed
    a chunk at a time as they arrive, so the records read are freed once parsed."""
    with heap.paused_collector():
        journal = await bus.read_all(TOPIC_JOURNAL, contract_id)
        others = asyncio.gather(
            bus.read_all(TOPIC_CONTRACTS, contract_id),
            bus.read_all(TOPIC_REVIEWS, contract_id),
            bus.read_all(TOPIC_TICKETS, contract_id),
        )
        placed: list[Placed[Observation]] = []
        origins = Origins()
        try:
            async for chunk in bus.read_chunks(TOPIC_MEASUREMENTS, contract_id):
                placed += _observations(chunk, contract_id, origins)
        except BaseException:
            others.cancel()  # the measurements could not be read: nor is the rest wanted
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await others
            raise
        contracts, reviews, tickets = await others
        found = history(contract_id, contracts, (), journal, reviews, tickets)
        found.measurements = _first_in_bus_order(placed)
        found.origins = origins
        return found
