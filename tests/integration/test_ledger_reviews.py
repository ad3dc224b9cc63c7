"""Ratings count in payment: the review line, a late review's correction, the audit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.events import ReviewSubmitted, make_event
from shared.publishing import publish_events
from tests.integration.test_audit import verification
from tests.integration.test_ledger import CONTRACT, availability, final_statement, journal, terms
from tests.system import System, eventually

pytestmark = pytest.mark.integration


async def review(system: System, reviewer: str, rating: int, day: int = 10) -> None:
    event = make_event(
        ReviewSubmitted(
            review_id=f"r-{reviewer}-{rating}", reviewer_pseudonym=reviewer, rating=rating
        ),
        contract_id=CONTRACT,
        source="reviews",
        occurred_at=datetime(2026, 9, day, tzinfo=UTC),
    )
    await publish_events(system.apps["reviews"].state.runtime.bus, [event])


async def test_reviews_move_the_money_and_late_ones_correct_it(system: System) -> None:
    assert (
        await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    ).status_code == 201
    await system.ingest.post(
        "/v1/measurements", json=availability(100, 100), headers=system.token("agent", [CONTRACT])
    )
    for reviewer in ("p1", "p2", "p3"):
        await review(system, reviewer, 5)
    await review(system, "p3", 4, day=11)  # the later review of p3 replaces the first
    path = f"/v1/contracts/{CONTRACT}/statements/2026-09"

    async def provisional() -> dict | None:
        r = await system.statements.get(path, headers=system.token("customer", [CONTRACT]))
        return r.json() if r.status_code == 200 else None

    shown = await eventually(provisional, lambda s: s and s["lines"][-1]["amount"] == "416.67")
    line = shown["lines"][-1]
    assert line["kind"] == "review_adjustment"
    # mean (5 + 5 + 4) / 3 = 4.667 → +5% · (4.667 - 3) / 2 = +4.1667% of 10000 = 416.67
    assert line["amount"] == "416.67"
    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/2026-09/close", headers=system.token()
    )
    assert closed.status_code == 202
    final = await final_statement(system, "2026-09")
    assert final["total"] == "10416.67"
    await review(system, "p4", 1)  # late: mean (5 + 5 + 4 + 1) / 4 = 3.75 → +1.875% = 187.50
    entries = await eventually(
        lambda: journal(system), lambda es: any(e["kind"] == "adjustment" for e in es)
    )
    correction = next(e for e in entries if e["kind"] == "adjustment")
    assert correction["amount"] == "-229.17"
    assert correction["corrects_line_id"] == f"{CONTRACT}:2026-09:review_adjustment:"
    await eventually(lambda: verification(system), lambda v: v["entries_checked"] == len(entries))
    report = await verification(system)
    assert report["verified"] is True, __import__("json").dumps(report["differences"], indent=1)
