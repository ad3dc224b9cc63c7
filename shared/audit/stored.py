"""A stored copy of a contract's journal (the ledger's table, the statements read model)
against the bus: the same entries on both sides, each body as published, the stored chain
intact, and every column stored beside the body saying what the body says."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from shared import jsonutil
from shared.audit.finals import Difference
from shared.core import money
from shared.core.journal import JournalEntry, chain_breaks

Row = Mapping[str, Any]
"""A stored entry: its columns by name, `body` the entry's JSON (text or parsed)."""


def _minor_units(entry: JournalEntry) -> int:
    return int(entry.amount.scaleb(money.minor_digits(entry.currency)))


DERIVED: dict[str, Callable[[JournalEntry], Any]] = {
    "amount_minor": _minor_units,
    "posted_at": lambda entry: entry.posted,
}
"""Columns that hold a body field in another form; any other column named like a body
field must equal it, and columns the body does not name are not checked."""


def body_of(row: Row) -> JournalEntry | None:
    """The row's entry, or None when its body is not one."""
    body = row.get("body")
    if isinstance(body, str | bytes):
        try:
            body = jsonutil.loads(body)
        except ValueError:
            return None
    return JournalEntry.published(body)


def stored_ids(rows: Sequence[Row]) -> set[str]:
    """The entry ids the rows' bodies carry."""
    return {body.entry_id for body in map(body_of, rows) if body is not None}


def stored_differences(
    published: Sequence[JournalEntry], rows: Sequence[Row], store: str
) -> list[Difference]:
    """Every way the stored entries (`rows`, in the store's chain order) and the published
    ones disagree; `store` names the store in each difference."""
    differences: list[Difference] = []
    bodies: list[JournalEntry] = []
    for row in rows:
        body = body_of(row)
        if body is None:
            differences.append(
                {
                    "check": "stored_body",
                    "store": store,
                    "entry_id": row.get("entry_id"),
                    "problem": "the stored body is not a journal entry",
                }
            )
            continue
        bodies.append(body)
        differences += _columns(row, body, store)
    differences += [{"check": "stored_chain", "store": store, **b} for b in chain_breaks(bodies)]
    on_bus = {e.entry_id: e for e in published}
    stored = {b.entry_id: b for b in bodies}
    for entry_id, entry in on_bus.items():
        if entry_id not in stored:
            differences.append(_missing("missing_from_database", entry, store))
        elif stored[entry_id] != entry:
            differences.append(
                {
                    "check": "published",
                    "store": store,
                    "entry_id": entry_id,
                    "problem": "differs from the entry published on the bus",
                    "expected": entry.hash,
                    "found": stored[entry_id].hash,
                }
            )
    for entry_id, body in stored.items():
        if entry_id not in on_bus:
            differences.append(_missing("missing_from_bus", body, store))
    return differences


def _missing(check: str, entry: JournalEntry, store: str) -> Difference:
    where = "the bus" if check == "missing_from_bus" else store
    return {
        "check": check,
        "store": store,
        "entry_id": entry.entry_id,
        "seq": entry.seq,
        "period": entry.period,
        "kind": entry.kind,
        "amount": str(entry.amount),
        "problem": f"not in {where}",
    }


def _columns(row: Row, entry: JournalEntry, store: str) -> list[Difference]:
    differences: list[Difference] = []
    body = entry.document()
    for column, value in row.items():
        if column == "body" or (column not in DERIVED and column not in body):
            continue
        try:
            expected = DERIVED[column](entry) if column in DERIVED else body[column]
        except (ArithmeticError, KeyError, TypeError, ValueError):
            expected = None
        if value != expected:
            differences.append(
                {
                    "check": "stored_column",
                    "store": store,
                    "entry_id": entry.entry_id,
                    "column": column,
                    "problem": "the column disagrees with the entry's body",
                    "expected": _text(expected),
                    "found": _text(value),
                }
            )
    return differences


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
