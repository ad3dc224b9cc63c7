"""`shared.audit.verify` on hand-built histories: a closed September with a late correction
and an accepted dispute checks out; each way of forging, hiding or editing an entry is a
named difference; an open period has nothing final to verify."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.demo import demo_terms
from services.ledger.domain import posting
from shared.audit import Dispute, History, Journal, NothingFinal, verify
from shared.audit.causes import adjustment_differences
from shared.core.journal import GENESIS, EntryBody, JournalEntry, chain
from shared.core.payment import Observation, compute_statement
from shared.core.terms import Terms

CONTRACT = "acme-2026"
CLOSED_AT = datetime(2026, 10, 2, tzinfo=UTC)
LATE_AT = datetime(2026, 10, 5, tzinfo=UTC)
CREDIT = f"{CONTRACT}:2026-09:sla_credit:availability"


def terms() -> Terms:
    document = copy.deepcopy(demo_terms("2026-09"))
    document["contract_id"] = CONTRACT
    return Terms.model_validate(document)


def probes(n: int, up: int, first_offset: int = 0, prefix: str = "a") -> list[Any]:
    """`n` availability probes in September (the first `up` succeeded), from `first_offset`."""
    return [
        (
            0,
            first_offset + i,
            Observation(
                f"{prefix}-{i}",
                "availability",
                1 if i < up else 0,
                datetime(2026, 9, 1 + i % 28, 10, tzinfo=UTC),
            ),
        )
        for i in range(n)
    ]


def cut(offset: int) -> dict[str, Any]:
    return {"slapay.measurements": {"0": {"offset": offset}}}


class Chain:
    """Entries chained as the ledger chains them."""

    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []

    def post(self, bodies: list[EntryBody]) -> list[JournalEntry]:
        posted = []
        for body in bodies:
            seq = len(self.entries) + 1
            prev = self.entries[-1].hash if self.entries else GENESIS
            entry = chain(prev, body, CONTRACT, seq)
            self.entries.append(entry)
            posted.append(entry)
        return posted


def forged(entry: JournalEntry, **changes: Any) -> JournalEntry:
    """`entry` with `changes`, chained again in its place (a forger who can hash)."""
    body = entry.body().model_copy(update=changes)
    return chain(entry.prev_hash, body, CONTRACT, entry.seq)


def closed_september(up: int = 995) -> tuple[History, Chain]:
    """1000 probes, September closed on them (10% credit at 995 up)."""
    t = terms()
    events = probes(1000, up)
    computed = compute_statement(t, "2026-09", [e for _, _, e in events], [], terms_version=1)
    journal = Chain()
    finals = journal.post(posting.final_bodies(computed, CLOSED_AT, cut(999)))
    document = posting.compose(computed, [], status="final", entries=finals)
    h = History(CONTRACT, terms=[t], measurements=events)
    h.journal = Journal(journal.entries, finals={"2026-09": document.model_dump(mode="json")})
    return h, journal


def with_late_failures(h: History, journal: Chain) -> JournalEntry:
    """10 late failures; the ledger's correction of September posted into October."""
    late = probes(10, 0, first_offset=1000, prefix="late")
    h.measurements = [*h.measurements, *late]
    recomputed = compute_statement(
        terms(), "2026-09", [e for _, _, e in h.measurements], [], terms_version=1
    )
    posted = posting.effective_amounts(journal.entries, "2026-09")
    bodies = posting.correction_bodies(
        recomputed, posted, "2026-10", LATE_AT, ["late-0"], cut(1009)
    )
    [correction] = journal.post(bodies)
    h.journal = replace(h.journal, entries=journal.entries)
    return correction


def dispute_adjustment(
    h: History, journal: Chain, dispute_id: str, amount: str, line_id: str = CREDIT
) -> JournalEntry:
    dispute = {"dispute_id": dispute_id, "period": "2026-09", "line_id": line_id}
    body = posting.dispute_body(CONTRACT, "2026-10", "EUR", dispute, Decimal(amount), LATE_AT, {})
    [entry] = journal.post([body])
    h.journal = replace(h.journal, entries=journal.entries)
    return entry


def accepted(dispute_id: str, amount: str, line_id: str = CREDIT) -> Dispute:
    return Dispute(dispute_id, "2026-09", line_id, "accepted", Decimal(amount))


def checks(differences: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(d["check"], d.get("entry_id")) for d in differences]


def test_a_closed_month_its_correction_and_an_accepted_dispute_verify() -> None:
    h, journal = closed_september()
    assert verify(h, "2026-09") == []
    correction = with_late_failures(h, journal)
    assert correction.amount == Decimal("-1500.00")  # 995/1010 < 0.99: the 25% tier
    h.disputes = {"d-1": accepted("d-1", "500.00")}
    dispute_adjustment(h, journal, "d-1", "500.00")
    assert verify(h, "2026-09") == []
    assert verify(h, "2026-09", [{"body": e.document()} for e in journal.entries]) == []


def test_a_correction_after_an_accepted_dispute_leaves_the_settlement_standing() -> None:
    """A late-event correction brings the line to what the formula now makes it, from its
    final entry and earlier corrections; an accepted dispute's amount stands apart, so the
    correction does not undo what the parties settled. The audit sums the same way."""
    h, journal = closed_september()
    h.disputes = {"d-1": accepted("d-1", "500.00")}
    dispute_adjustment(h, journal, "d-1", "500.00")
    correction = with_late_failures(h, journal)
    assert correction.amount == Decimal("-1500.00")  # -1000 brought to -2500; the +500 stays
    assert verify(h, "2026-09") == []


def test_an_adjustment_of_a_dispute_the_bus_does_not_hold_is_named() -> None:
    h, journal = closed_september()
    made_up = dispute_adjustment(h, journal, "made-up", "-5000.00")
    [difference] = verify(h, "2026-09")
    assert difference == {
        **difference,
        "check": "adjustment_cause",
        "entry_id": made_up.entry_id,
        "dispute_id": "made-up",
        "corrects_period": "2026-09",
        "period": "2026-10",
    }
    # Verifying the month it was posted into names it too.
    assert checks(adjustment_differences(h, "2026-10")) == [("adjustment_cause", made_up.entry_id)]


@pytest.mark.parametrize(
    ("dispute", "problem"),
    [
        (Dispute("d-1", "2026-09", CREDIT), "not accepted"),
        (Dispute("d-1", "2026-09", CREDIT, "rejected"), "not accepted"),
        (accepted("d-1", "400.00"), "another amount"),
        (Dispute("d-1", "2026-08", CREDIT, "accepted", Decimal(500)), "another line"),
        (
            accepted("d-1", "500.00", f"{CONTRACT}:2026-09:sla_credit:latency_ms"),
            "another line",
        ),
    ],
)
def test_a_dispute_adjustment_needs_the_very_dispute_that_accepted_it(
    dispute: Dispute, problem: str
) -> None:
    h, journal = closed_september()
    h.disputes = {"d-1": dispute}
    entry = dispute_adjustment(h, journal, "d-1", "500.00")
    [difference] = verify(h, "2026-09")
    assert difference["check"] == "adjustment_cause" and difference["entry_id"] == entry.entry_id
    assert problem in difference["problem"]


def test_a_dispute_settles_once() -> None:
    h, journal = closed_september()
    h.disputes = {"d-1": accepted("d-1", "500.00")}
    dispute_adjustment(h, journal, "d-1", "500.00")
    again = dispute_adjustment(h, journal, "d-1", "500.00")
    [difference] = verify(h, "2026-09")
    assert (difference["check"], difference["entry_id"]) == ("adjustment_cause", again.entry_id)
    assert "settled by entry" in difference["problem"]


def test_a_correction_without_late_events_is_named() -> None:
    h, journal = closed_september()
    recomputed = compute_statement(
        terms(), "2026-09", [e for _, _, e in probes(1000, 980)], [], terms_version=1
    )
    posted = posting.effective_amounts(journal.entries, "2026-09")
    bodies = posting.correction_bodies(recomputed, posted, "2026-10", LATE_AT, ["x"], cut(999))
    [unfounded] = journal.post(bodies)
    h.journal = replace(h.journal, entries=journal.entries)
    [difference] = verify(h, "2026-09")
    assert (difference["check"], difference["entry_id"]) == (
        "adjustment_cause",
        unfounded.entry_id,
    )
    assert "no late event" in difference["problem"]


def test_a_correction_the_late_events_do_not_give_is_named() -> None:
    h, journal = closed_september()
    correction = with_late_failures(h, journal)
    journal.entries[-1] = forged(correction, amount=Decimal("-2500.00"))
    h.journal = replace(h.journal, entries=journal.entries)
    [difference] = verify(h, "2026-09")
    assert difference == {
        **difference,
        "check": "adjustment",
        "entry_id": correction.entry_id,
        "expected": "-2500.00",  # where the late events bring the credit line
        "found": "-3500.00",  # the final -1000.00 and the edited correction
    }


def test_an_open_period_or_unknown_contract_has_nothing_final() -> None:
    h, _ = closed_september()
    with pytest.raises(NothingFinal, match="still open"):
        verify(h, "2026-10")
    with pytest.raises(NothingFinal, match="no contract"):
        verify(History(CONTRACT), "2026-09")


def rows(entries: list[JournalEntry]) -> list[dict[str, Any]]:
    """As the ledger's journal table stores them: columns beside the body."""
    return [
        {
            "entry_id": e.entry_id,
            "seq": e.seq,
            "period": e.period,
            "kind": e.kind,
            "amount_minor": int(e.amount * 100),
            "currency": e.currency,
            "hash": e.hash,
            "prev_hash": e.prev_hash,
            "posted_at": e.posted,
            "body": e.document(),
        }
        for e in entries
    ]


def test_a_stored_journal_missing_an_entry_or_holding_another_is_named() -> None:
    h, journal = closed_september()
    tail = with_late_failures(h, journal)
    stored = rows(journal.entries)
    assert verify(h, "2026-09", stored) == []
    assert checks(verify(h, "2026-09", stored[:-1])) == [("missing_from_database", tail.entry_id)]
    extra = Chain()
    extra.entries = list(journal.entries)
    [unpublished] = extra.post([tail.body().model_copy(update={"amount": Decimal("-1.00")})])
    assert checks(verify(h, "2026-09", rows(extra.entries))) == [
        ("missing_from_bus", unpublished.entry_id)
    ]


def test_a_stored_column_or_body_that_disagrees_is_named() -> None:
    h, journal = closed_september()
    stored = rows(journal.entries)
    credit = stored[1]
    stored[1] = {**credit, "amount_minor": -1000}
    [difference] = verify(h, "2026-09", stored, store="ledger database")
    assert difference == {
        **difference,
        "check": "stored_column",
        "store": "ledger database",
        "column": "amount_minor",
        "expected": -100000,
        "found": -1000,
    }
    stored[1] = {**credit, "body": {**credit["body"], "amount": "-10.00"}}
    assert ("published", credit["entry_id"]) in checks(verify(h, "2026-09", stored))
    stored[1] = {**credit, "body": "{not json"}
    assert ("stored_body", credit["entry_id"]) in checks(verify(h, "2026-09", stored))


def test_an_entry_published_twice_with_other_content_is_named() -> None:
    h, journal = closed_september()
    credit = journal.entries[1]
    h.journal = replace(
        h.journal, conflicts=[credit.model_copy(update={"hash": "sha256:" + "1" * 64})]
    )
    assert checks(verify(h, "2026-09")) == [("published_twice", credit.entry_id)]


def test_a_published_final_statement_that_disagrees_with_the_chain_is_named() -> None:
    h, _ = closed_september()
    document = h.finals["2026-09"]
    h.journal.finals["2026-09"] = {**document, "total": "1.00"}
    [difference] = verify(h, "2026-09")
    assert (difference["check"], difference["field"]) == ("final_statement", "total")
