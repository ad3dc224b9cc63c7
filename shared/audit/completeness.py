"""Whether the audit read every record the ledger applied for the contract.

The audit reads a contract's records by their key: on the SQL log by an index, on Kafka only
the partition the producer's partitioner maps the key to. That is every record of the
contract while each key stays in one partition, which holds as long as no partitions are
added to a topic (adding them moves keys: later records land elsewhere). Every journal entry
records its cut, how far the ledger had applied the contract's measurements, reviews and
ticket events per partition (`inputs`); a cut beyond the records read here means some were not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.audit.reading import History, Placed
from shared.events import TOPIC_MEASUREMENTS, TOPIC_REVIEWS, TOPIC_TICKETS

Difference = dict[str, Any]


def unread_cuts(h: History, period: str) -> list[Difference]:
    """A difference for each position beyond the records read that is named by the cut of
    an entry the check of `period` rests on: its final entries, and the adjustments posted
    into it or correcting it."""
    read = {
        TOPIC_MEASUREMENTS: _last_offsets(h.measurements),
        TOPIC_REVIEWS: _last_offsets([*h.ratings, *h.releases]),
        TOPIC_TICKETS: _last_offsets(h.tickets),
    }
    return [
        {
            "check": "completeness",
            "entry_id": entry.entry_id,
            "problem": f"its cut names {topic} partition {partition} up to offset {offset},"
            " beyond the contract's records read there (were partitions added to the topic?)",
            "expected": offset,
            "found": read[topic].get(partition),
        }
        for entry in h.entries
        if period in (entry.period, entry.corrects_period)
        for topic in read
        for partition, offset in _cut(entry.inputs, topic)
        if offset > read[topic].get(partition, -1)
    ]


def _last_offsets(placed: Iterable[Placed[Any]]) -> dict[int, int]:
    last: dict[int, int] = {}
    for partition, offset, _ in placed:
        last[partition] = max(offset, last.get(partition, -1))
    return last


def _cut(inputs: Any, topic: str) -> list[tuple[int, int]]:
    """(partition, offset) pairs an entry's `inputs` records for `topic`; a malformed cut
    names none (the recomputation then counts no events, and differs)."""
    cut = inputs.get(topic) if isinstance(inputs, Mapping) else None
    pairs = []
    for partition, place in cut.items() if isinstance(cut, Mapping) else ():
        offset = place.get("offset") if isinstance(place, Mapping) else None
        if str(partition).isdigit() and isinstance(offset, int) and not isinstance(offset, bool):
            pairs.append((int(partition), offset))
    return pairs
