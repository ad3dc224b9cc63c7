"""Reviews that cannot be bought, through the HTTP API on both buses: a provider cannot add
reviews, terms cap the reviewers who count, and a burst holds the review line until an admin
releases it; the audit recomputes the released amount from the bus alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.ledger import journal_store, store
from services.ledger.replay import replay
from shared import db
from tests.integration.test_replay import published
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CONTRACT = "trust-test"
_last_month = datetime.now(UTC).replace(day=1) - timedelta(days=1)
PERIOD = f"{_last_month.year:04d}-{_last_month.month:02d}"
IMPORT = f"/v1/contracts/{CONTRACT}/reviews:import"
SUMMARY = f"/v1/contracts/{CONTRACT}/reviews?period={PERIOD}"
STATEMENT = f"/v1/contracts/{CONTRACT}/statements/{PERIOD}"
REVIEW_LINE = f"{CONTRACT}:{PERIOD}:review_adjustment:"


def terms(**reviews: Any) -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "provider": "Hosting Co",
        "customer": "Customer AG",
        "currency": "EUR",
        "base_fee": "10000.00",
        "effective_from": PERIOD,
        "kpis": [
            {
                "name": "availability",
                "aggregation": "mean",
                "objective": ">=",
                "target": 0.99,
                "credits": [{"breach": 0.99, "percent": 10}],
            }
        ],
        "reviews": {"min_reviews": 3, "max_bonus_percent": 5, "max_penalty_percent": 5, **reviews},
    }


def review(reviewer: str, rating: int, comment: str | None = None) -> dict[str, Any]:
    return {
        "contract_id": CONTRACT,
        "reviewer": reviewer,
        "rating": rating,
        "dimensions": {"communication": rating, "usefulness": rating, "reliability": rating},
        "comment": comment,
        "occurred_at": f"{PERIOD}-05T10:00:00Z",
    }


def csv(reviewers: list[str], rating: int = 5) -> bytes:
    rows = [f"{who},{rating},,{PERIOD}-06T09:00:00Z" for who in reviewers]
    return "\n".join(["reviewer,rating,comment,submitted_at", *rows, ""]).encode()


def party(system: System, role: str = "customer") -> dict[str, str]:
    """A fresh token of `role` for the contract (each its own rate-limit and burst bucket)."""
    return system.token(role, [CONTRACT])


async def agree(system: System, **reviews: Any) -> None:
    created = await system.ledger.post(
        "/v1/contracts", json=terms(**reviews), headers=system.token()
    )
    assert created.status_code == 201, created.text
    await eventually(
        lambda: system.clients["reviews"].get(SUMMARY, headers=system.token()),
        lambda r: r.status_code == 200,
    )


async def review_line(system: System, accept: Any) -> dict[str, Any]:
    """The statement's review line, once `accept` holds for it."""

    async def probe() -> dict[str, Any] | None:
        response = await system.statements.get(STATEMENT, headers=party(system, "auditor"))
        if response.status_code != 200:
            return None
        return next(x for x in response.json()["lines"] if x["kind"] == "review_adjustment")

    line: dict[str, Any] = await eventually(probe, lambda x: x is not None and accept(x))
    return line


async def test_invented_imports_neither_get_in_nor_pay_at_once(system: System) -> None:
    """A provider's import of 20 five-star reviewers is refused; the same burst from one
    customer token is held at 0, not paid, until an admin releases it."""
    await agree(system)
    reviews = system.clients["reviews"]
    invented = [f"fan-{i}@provider.example" for i in range(20)]
    provider = {**party(system, "provider"), "content-type": "text/csv"}
    refused = await reviews.post(IMPORT, content=csv(invented), headers=provider)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await reviews.get(SUMMARY, headers=party(system))).json()["count"] == 0

    customer = {**party(system), "content-type": "text/csv"}
    imported = await reviews.post(IMPORT, content=csv(invented), headers=customer)
    assert imported.status_code == 202, imported.text
    summary = (await reviews.get(SUMMARY, headers=party(system))).json()
    assert summary["sources"] == {"import": 20}
    assert [flag["kind"] for flag in summary["flags"]] == ["burst"]

    held = await review_line(system, lambda x: x["derivation"].get("reviews") == 20)
    assert held["amount"] == "0.00"
    assert held["derivation"]["reason"] == "held_burst"
    assert held["derivation"]["held_amount"] == "500.00"
    assert held["derivation"]["review_sources"] == {"import": 20}
    assert held["derivation"]["flags"] == ["burst"]

    release = f"/v1/contracts/{CONTRACT}/reviews/{PERIOD}/release"
    assert (await reviews.post(release, headers=party(system))).status_code == 403
    released = await reviews.post(release, headers=system.token())
    assert released.status_code == 202, released.text
    paid = await review_line(system, lambda x: x["amount"] == "500.00")
    assert "reason" not in paid["derivation"]


async def test_a_customer_cannot_claim_more_reviewers_than_the_terms_count(
    system: System,
) -> None:
    """Three real reviewers rate 5; one token then claims 25 invented reviewers rating 1.
    With `max_reviewers` 5 only two of them get in (without the cap: 40 / 28 → -3.93 %)."""
    await agree(system, max_reviewers=5)
    reviews = system.clients["reviews"]
    for who in ("ann", "bob", "cyd"):
        sent = await reviews.post("/v1/reviews", json=review(who, 5), headers=party(system))
        assert sent.status_code == 202, sent.text
    attacker = party(system)
    answers = [
        await reviews.post("/v1/reviews", json=review(f"sock-{i}", 1), headers=attacker)
        for i in range(25)
    ]
    assert [a.status_code for a in answers] == [202] * 2 + [422] * 23
    problem = answers[-1].json()
    assert answers[-1].headers["content-type"] == "application/problem+json"
    assert "at most 5 distinct reviewers" in problem["detail"]
    replaced = await reviews.post("/v1/reviews", json=review("ann", 4), headers=party(system))
    assert replaced.status_code == 202, replaced.text

    summary = (await reviews.get(SUMMARY, headers=party(system))).json()
    assert summary["count"] == 5 and summary["flags"] == []
    # ann's 4 replaces her 5: (5 + 5 + 4 + 1 + 1) / 5 = 3.2 → +0.5 % = +50.00
    line = await review_line(system, lambda x: x["amount"] == "50.00")
    assert line["derivation"]["reviews"] == 5 and line["derivation"]["review_sources"] == {"api": 5}


async def test_comments_stay_hidden_when_a_provider_tries_to_add_reviewers(
    system: System,
) -> None:
    """One real reviewer: the provider's import of two more is refused, so the three-reviewer
    threshold is not met and the real reviewer's comment stays hidden."""
    await agree(system)
    reviews = system.clients["reviews"]
    words = "Only I wrote this; you would know it was me."
    sent = await reviews.post("/v1/reviews", json=review("real", 2, words), headers=party(system))
    assert sent.status_code == 202, sent.text
    provider = {**party(system, "provider"), "content-type": "text/csv"}
    refused = await reviews.post(IMPORT, content=csv(["x1", "x2"]), headers=provider)
    assert refused.status_code == 403, refused.text
    seen = (await reviews.get(SUMMARY, headers=party(system, "provider"))).json()
    assert seen["count"] == 1
    assert seen["comments"] is None and seen["comments_hidden"] == "fewer_than_3_reviewers"
    assert words not in str(seen)


async def test_a_release_after_the_close_posts_an_adjustment_the_audit_recomputes(
    system: System, tmp_path: Path
) -> None:
    await agree(system)
    reviews = system.clients["reviews"]
    customer = {**party(system), "content-type": "text/csv"}
    # five reviewers from one token: a burst; (5 + 5 + 5 + 4 + 4) / 5 = 4.6 → +4 % = +400.00
    imported = await reviews.post(IMPORT, content=csv(["a", "b", "c"]), headers=customer)
    assert imported.status_code == 202, imported.text
    fours = await reviews.post(IMPORT, content=csv(["d", "e"], rating=4), headers=customer)
    assert fours.status_code == 202, fours.text
    await review_line(system, lambda x: x["derivation"].get("reason") == "held_burst")

    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/{PERIOD}/close", headers=system.token()
    )
    assert closed.status_code == 202, closed.text
    final = await eventually(
        lambda: system.statements.get(STATEMENT, headers=party(system)),
        lambda r: r.status_code == 200 and r.json()["status"] == "final",
    )
    line = next(x for x in final.json()["lines"] if x["kind"] == "review_adjustment")
    assert line["amount"] == "0.00" and line["derivation"]["held_amount"] == "400.00"
    assert final.json()["total"] == "10000.00"

    release = f"/v1/contracts/{CONTRACT}/reviews/{PERIOD}/release"
    for _ in range(2):  # a repeated release is the same event: paid once
        answer = await reviews.post(release, headers=system.token())
        assert answer.status_code == 202, answer.text

    async def adjustments() -> list[dict[str, Any]]:
        engine = system.apps["ledger"].state.runtime.engine
        entries = [e.document() for e in await journal_store.entries(engine, CONTRACT)]
        return [e for e in entries if e["kind"] == "adjustment"]

    (adjustment,) = await eventually(adjustments, lambda found: len(found) == 1)
    assert adjustment["amount"] == "400.00"
    assert adjustment["corrects_line_id"] == REVIEW_LINE
    assert adjustment["corrects_period"] == PERIOD

    async def verification() -> dict[str, Any]:
        response = await system.statements.get(
            f"{STATEMENT}/verify", headers=party(system, "auditor")
        )
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    report = await eventually(verification, lambda v: v["entries_checked"] >= 4)
    assert report["verified"] is True, report["differences"]
    assert len(await adjustments()) == 1

    # a ledger rebuilt from the bus folds the release the same way: the same chain head
    runtime = system.apps["ledger"].state.runtime
    entries = await journal_store.entries(runtime.engine, CONTRACT)
    await eventually(lambda: published(runtime.bus), lambda n: n >= len(entries))
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    try:
        await db.create_schema(engine, store.metadata)
        (outcome,) = [o for o in await replay(runtime.bus, engine) if o.contract_id == CONTRACT]
    finally:
        await engine.dispose()
    assert outcome.matches and outcome.replayed_head == entries[-1].hash, outcome
