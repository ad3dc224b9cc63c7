"""Journal entries as typed models: what the chain hashes, and what counts as published."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.core.journal import GENESIS, EntryBody, JournalEntry, chain, chain_breaks
from shared.core.statement import Derivation


def body(amount: str = "-10.00", line_id: str = "availability") -> EntryBody:
    return EntryBody(
        contract_id="c-1",
        period="2026-09",
        kind="sla_credit",
        line_id=line_id,
        kpi="availability",
        amount=Decimal(amount),
        currency="EUR",
        description="availability 99.5% (tier <= 99.9)",
        derivation=Derivation(aggregation="mean", value=99.5, events=1000),
        events_digest="sha256:" + "a" * 64,
        terms_version=1,
        inputs={"cause": {"topic": "measurements", "partition": 0, "offset": 7}},
        posted_at="2026-10-01T00:00:00Z",
    )


def test_an_entry_round_trips_through_its_published_document() -> None:
    entry = chain(GENESIS, body(), "c-1", 1)
    assert JournalEntry.published(entry.document()) == entry
    assert entry.body() == body()


@pytest.mark.parametrize(
    "change",
    [
        {"surplus": 1},  # a field the ledger never writes
        {"amount": -10.0},  # money as a JSON number, not the decimal text hashed
        {"seq": 0},
        {"period": "2026-13"},
    ],
)
def test_a_document_the_ledger_could_not_have_written_is_not_an_entry(
    change: dict[str, Any],
) -> None:
    document = {**chain(GENESIS, body(), "c-1", 1).document(), **change}
    assert JournalEntry.published(document) is None


def test_not_a_mapping_is_not_an_entry() -> None:
    assert JournalEntry.published(["c-1"]) is None


def test_a_changed_amount_or_a_broken_link_is_named() -> None:
    first = chain(GENESIS, body(), "c-1", 1)
    second = chain(first.hash, body("5.00", "review"), "c-1", 2)
    assert chain_breaks([first, second]) == []
    edited = first.model_copy(update={"amount": Decimal("-1.00")})
    problems = [b["problem"] for b in chain_breaks([edited, second])]
    assert problems == ["hash does not match the entry's content"]
    relinked = chain(GENESIS, body("-1.00"), "c-1", 1)
    problems = [b["problem"] for b in chain_breaks([relinked, second])]
    assert problems == ["prev_hash does not match the entry before"]
