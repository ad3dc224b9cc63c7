"""Verify a statement without trusting the running system: recompute it from the raw events
on the bus with the same `compute_statement`, and check the hash chain and the digests.

A final statement is checked against the events it was computed from — those of its
contract's partition up to the offsets its entries record (`inputs`); each correction
against the events up to its own recorded offset.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from shared import heap
from shared.bus import Bus, Record
from shared.consuming import Delivered, Incoming, decode
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_JOURNAL,
    TOPIC_MEASUREMENTS,
    TOPIC_REVIEWS,
    Envelope,
    JournalEntryPosted,
    ReviewSubmitted,
    StatementFinalized,
    TermsAgreed,
)
from shared.journal import chain_breaks
from shared.measured import DeliveredMeasurement
from shared.payment import Observation, Rating, Statement, compute_statement
from shared.terms import Terms, terms_in_force, version_in_force

E = TypeVar("E", Observation, Rating)
Placed = tuple[int, int, E]
"""An event with its place on the bus: (partition, offset, event)."""


@dataclass
class History:
    """One contract's events as the bus holds them."""

    contract_id: str
    terms: list[Terms] = field(default_factory=list)
    measurements: list[Placed[Observation]] = field(default_factory=list)
    ratings: list[Placed[Rating]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)


def _events(records: Iterable[Record], contract_id: str) -> Iterable[tuple[Record, Envelope]]:
    for record in records:
        if record.key != contract_id:
            continue
        try:
            yield record, Envelope.from_json(record.value)
        except (ValidationError, ValueError):
            continue  # unreadable records are on the dead-letter topic, not in any statement


def _mine(
    records: Iterable[Record], contract_id: str, *, measurements: bool = False
) -> list[Incoming]:
    """The contract's events among `records` (its key and its envelope), read as the ledger
    reads them (`decode`): what the ledger refused is not counted here either."""
    keyed = [record for record in records if record.key == contract_id]
    return [
        d
        for d in decode(keyed, measurements=measurements).delivered
        if d.contract_id == contract_id
    ]


def _observations(records: Iterable[Record], contract_id: str) -> list[Placed[Observation]]:
    """The contract's measurements among `records`, in their order, repeats and all."""
    return [
        (m.partition, m.offset, Observation(m.event_id, m.kpi, m.number, m.occurred_at))
        for m in _mine(records, contract_id, measurements=True)
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
            )
            found.append((d.partition, d.offset, rating))
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
) -> History:
    found = History(contract_id)
    versions: dict[int, Terms] = {}
    for _, event in _events(contracts, contract_id):
        if event.type == TermsAgreed.TYPE:
            agreed = TermsAgreed.model_validate(event.data)
            versions.setdefault(agreed.version, Terms.model_validate(agreed.terms))
    found.terms = [versions[v] for v in sorted(versions)]
    found.measurements = _first_in_bus_order(_observations(measurements, contract_id))
    found.ratings = _first_in_bus_order(_ratings(reviews, contract_id))
    entries: dict[str, dict[str, Any]] = {}
    for _, event in _events(journal, contract_id):
        if event.type == JournalEntryPosted.TYPE:
            entry = event.data["entry"]
            entries.setdefault(entry["entry_id"], entry)
        elif event.type == StatementFinalized.TYPE:
            found.finals.setdefault(event.data["statement"]["period"], event.data["statement"])
    found.entries = sorted(entries.values(), key=lambda e: e["seq"])
    return found


def _recompute(h: History, period: str, inputs: Mapping[str, Any]) -> Statement | None:
    terms, version = terms_in_force(h.terms, period), version_in_force(h.terms, period)
    if terms is None or version is None:
        return None
    observations = _upto(h.measurements, inputs.get("slapay.measurements", {}))
    ratings = _upto(h.ratings, inputs.get("slapay.reviews", {}))
    return compute_statement(terms, period, observations, ratings, terms_version=version)


def _upto(events: Iterable[Placed[E]], cut: Mapping[str, Any]) -> list[E]:
    """The events at or before the recorded offset of their partition (none of a partition
    the cut does not name)."""
    last = {int(partition): place["offset"] for partition, place in cut.items()}
    return [e for partition, offset, e in events if offset <= last.get(partition, -1)]


def verify(
    h: History, period: str, entries: Sequence[Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Every difference found; empty means the period's final statement checks out.

    `entries` is the chain to check (e.g. read from a database); default: the bus's."""
    chain = list(entries) if entries is not None else h.entries
    differences: list[dict[str, Any]] = [{"check": "hash_chain", **b} for b in chain_breaks(chain)]
    published = {e["entry_id"]: e["hash"] for e in h.entries}
    for entry in chain if entries is not None else ():
        if published.get(entry["entry_id"]) != entry["hash"]:
            differences.append(
                {
                    "check": "published",
                    "entry_id": entry["entry_id"],
                    "problem": "differs from the entry published on the bus",
                    "expected": published.get(entry["entry_id"]),
                    "found": entry["hash"],
                }
            )
    finals = [e for e in chain if e["period"] == period and e["kind"] != "adjustment"]
    if not finals:
        return [
            *differences,
            {"check": "final_statement", "problem": f"{period} has no final entries"},
        ]
    expected = _recompute(h, period, finals[0].get("inputs", {}))
    if expected is None:
        return [*differences, {"check": "terms", "problem": f"no terms in force for {period}"}]
    differences += _compare(expected, {e["line_id"]: e for e in finals}, "final")
    posted = {e["line_id"]: Decimal(e["amount"]) for e in finals}
    for entry in chain:
        if entry.get("corrects_period") != period or entry.get("dispute_id"):
            continue
        posted[entry["corrects_line_id"]] = posted.get(
            entry["corrects_line_id"], Decimal(0)
        ) + Decimal(entry["amount"])
        recomputed = _recompute(h, period, entry.get("inputs", {}))
        line = (
            next((x for x in recomputed.lines if x.line_id == entry["corrects_line_id"]), None)
            if recomputed
            else None
        )
        should = line.amount if line else Decimal(0)
        if posted[entry["corrects_line_id"]] != should:
            differences.append(
                {
                    "check": "adjustment",
                    "entry_id": entry["entry_id"],
                    "line_id": entry["corrects_line_id"],
                    "expected": str(should),
                    "found": str(posted[entry["corrects_line_id"]]),
                }
            )
    return differences


def _compare(
    expected: Statement, found: Mapping[str, Mapping[str, Any]], what: str
) -> list[dict[str, Any]]:
    differences: list[dict[str, Any]] = []
    for line in expected.lines:
        entry = found.get(line.line_id)
        if entry is None:
            differences.append(
                {
                    "check": what,
                    "line_id": line.line_id,
                    "problem": "line missing",
                    "expected": str(line.amount),
                    "found": None,
                }
            )
            continue
        for key, want, got in (
            ("amount", line.amount, Decimal(entry["amount"])),
            ("events_digest", line.derivation.events_digest, entry["events_digest"]),
            ("events", line.derivation.events, entry["derivation"].get("events")),
        ):
            if want != got:
                differences.append(
                    {
                        "check": what,
                        "line_id": line.line_id,
                        "entry_id": entry["entry_id"],
                        "field": key,
                        "expected": str(want),
                        "found": str(got),
                    }
                )
    for line_id in set(found) - {line.line_id for line in expected.lines}:
        differences.append({"check": what, "line_id": line_id, "problem": "unexpected line"})
    return differences


async def read_history(bus: Bus, contract_id: str) -> History:
    """Read the contract's history from the beginning of the bus. Measurements are parsed a
    chunk at a time as they arrive, so the next chunk is on its way meanwhile and the
    records read are freed once parsed."""
    with heap.paused_collector():
        placed: list[Placed[Observation]] = []
        async for chunk in bus.read_chunks(TOPIC_MEASUREMENTS):
            placed += _observations(chunk, contract_id)
        found = history(
            contract_id,
            await bus.read_all(TOPIC_CONTRACTS),
            (),
            await bus.read_all(TOPIC_JOURNAL),
            await bus.read_all(TOPIC_REVIEWS),
        )
        found.measurements = _first_in_bus_order(placed)
        return found
