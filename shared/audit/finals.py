"""A period's final statement against the bus: its entries recomputed from the events it was
computed from (those up to the offsets its entries record), and the published
`statement.finalized` against the chain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from shared.audit.reading import E, History, Placed
from shared.core.journal import JournalEntry
from shared.core.payment import Statement, compute_statement
from shared.core.terms import terms_in_force, version_in_force

ADJUSTMENT = "adjustment"
Difference = dict[str, Any]


def final_entries(entries: Iterable[JournalEntry], period: str) -> list[JournalEntry]:
    """The entries the close of `period` posted: every entry of it that is no adjustment."""
    return [e for e in entries if e.period == period and e.kind != ADJUSTMENT]


def recompute(h: History, period: str, inputs: Any) -> Statement | None:
    """`period`'s statement from the events up to the bus positions `inputs` records."""
    inputs = inputs if isinstance(inputs, dict) else {}
    terms, version = terms_in_force(h.terms, period), version_in_force(h.terms, period)
    if terms is None or version is None:
        return None
    observations = upto(h.measurements, inputs.get("slapay.measurements"))
    ratings = upto(h.ratings, inputs.get("slapay.reviews"))
    releases = upto(h.releases, inputs.get("slapay.reviews"))
    tickets = upto(h.tickets, inputs.get("slapay.tickets"))
    return compute_statement(
        terms,
        period,
        observations,
        ratings,
        terms_version=version,
        releases=releases,
        tickets=tickets,
    )


def upto(events: Iterable[Placed[E]], cut: Any) -> list[E]:
    """The events at or before the recorded offset of their partition (none of a partition
    the cut does not name, nor of one it names in another shape)."""
    last: dict[int, int] = {}
    for partition, place in cut.items() if isinstance(cut, dict) else ():
        try:
            last[int(partition)] = int(place["offset"])
        except (KeyError, TypeError, ValueError):
            continue
    return [e for partition, offset, e in events if offset <= last.get(partition, -1)]


def final_differences(h: History, period: str) -> list[Difference]:
    """The final entries of `period` against their recomputation, and the published final
    statement against the chain."""
    finals = final_entries(h.entries, period)
    differences = _published_statement(h, period)
    if not finals:
        return differences
    expected = recompute(h, period, finals[0].inputs)
    if expected is None:
        return [*differences, {"check": "terms", "problem": f"no terms in force for {period}"}]
    twice = [line for line, n in Counter(e.line_id for e in finals).items() if n > 1]
    differences += [
        {"check": "final", "line_id": line, "problem": "line posted more than once"}
        for line in twice
    ]
    return differences + compare(expected, {e.line_id: e for e in finals}, "final")


def compare(expected: Statement, found: Mapping[str, JournalEntry], what: str) -> list[Difference]:
    """Each recomputed line against the entry posted for it: amount, events, digest."""
    differences: list[Difference] = []
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
            ("amount", line.amount, entry.amount),
            ("events_digest", line.derivation.events_digest, entry.events_digest),
            ("events", line.derivation.events, entry.derivation.events),
        ):
            if want != got:
                differences.append(
                    {
                        "check": what,
                        "line_id": line.line_id,
                        "entry_id": entry.entry_id,
                        "field": key,
                        "expected": str(want),
                        "found": str(got),
                    }
                )
    for line_id in sorted(set(found) - {line.line_id for line in expected.lines}):
        differences.append({"check": what, "line_id": line_id, "problem": "unexpected line"})
    return differences


def decimal(text: Any) -> Decimal | None:
    """The finite decimal a money string spells; None for anything else."""
    try:
        value = Decimal(text) if isinstance(text, str) else None
    except ArithmeticError:
        return None
    return value if value is not None and value.is_finite() else None


def _published_statement(h: History, period: str) -> list[Difference]:
    """The `statement.finalized` of `period` says what the chain says: it names exactly the
    entries posted into the period (a closed period takes no more), with their hashes; its
    lines are theirs, amount for amount; its total is the sum of its lines."""
    document = h.finals.get(period)
    if document is None:
        return [{"check": "final_statement", "problem": f"no statement.finalized for {period}"}]
    differences: list[Difference] = []
    posted_into = [e for e in h.entries if e.period == period]
    chain = {e.entry_id: e.hash for e in posted_into}
    named = {str(x.get("entry_id")): x.get("hash") for x in _objects(document.get("entries"))}
    for entry_id in sorted(chain.keys() | named.keys()):
        if chain.get(entry_id) != named.get(entry_id):
            differences.append(
                {
                    "check": "final_statement",
                    "entry_id": entry_id,
                    "problem": "the published statement and the chain disagree on this entry",
                    "expected": chain.get(entry_id),
                    "found": named.get(entry_id),
                }
            )
    lines = _objects(document.get("lines"))
    posted: Counter[tuple[str, Decimal | None]] = Counter(
        (e.line_id, e.amount) for e in posted_into
    )
    shown = Counter((str(x.get("line_id")), decimal(x.get("amount"))) for x in lines)
    for (line_id, amount), n in sorted((shown - posted).items(), key=str):
        differences.append(
            {
                "check": "final_statement",
                "line_id": line_id,
                "problem": f"a line no entry posts ({n}x)",
                "found": None if amount is None else str(amount),
            }
        )
    for (line_id, amount), n in sorted((posted - shown).items(), key=str):
        differences.append(
            {
                "check": "final_statement",
                "line_id": line_id,
                "problem": f"an entry the published statement does not show ({n}x)",
                "expected": str(amount),
            }
        )
    total = sum((amount or Decimal(0) for _, amount in shown.elements()), Decimal(0))
    if total != decimal(document.get("total")):
        differences.append(
            {
                "check": "final_statement",
                "field": "total",
                "problem": "the total is not the sum of the lines",
                "expected": str(total),
                "found": document.get("total"),
            }
        )
    return differences


def _objects(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []
