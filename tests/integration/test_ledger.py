"""The journal end to end, on both buses: close, corrections for late events, disputes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from services.demo import demo_terms
from services.ledger import store
from services.ledger.workers import request_due_closes
from shared.core.journal import JournalEntry, chain_breaks
from shared.core.tally import Tally
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CONTRACT = "acme-2026"


def terms(**overrides: Any) -> dict[str, Any]:
    document = copy.deepcopy(demo_terms("2026-09"))
    document.update(contract_id=CONTRACT, **overrides)
    return document


def availability(n: int, up: int, period: str = "2026-09", prefix: str = "a") -> dict[str, Any]:
    """`n` probes of which the first `up` succeeded."""
    return {
        "measurements": [
            {
                "measurement_id": f"{prefix}-{i}",
                "contract_id": CONTRACT,
                "kpi": "availability",
                "value": 1 if i < up else 0,
                "observed_at": f"{period}-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
            }
            for i in range(n)
        ]
    }


async def get(system: System, path: str, role: str = "customer") -> Any:
    response = await system.statements.get(path, headers=system.token(role, [CONTRACT]))
    return response.json() if response.status_code == 200 else None


async def final_statement(system: System, period: str) -> dict[str, Any]:
    path = f"/v1/contracts/{CONTRACT}/statements/{period}"
    return await eventually(lambda: get(system, path), lambda s: s and s["status"] == "final")


async def setup_closed_september(system: System, up: int = 1000) -> dict[str, Any]:
    assert (
        await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    ).status_code == 201
    posted = await system.ingest.post(
        "/v1/measurements", json=availability(1000, up), headers=system.token("agent", [CONTRACT])
    )
    assert posted.status_code == 202
    path = f"/v1/contracts/{CONTRACT}/statements/2026-09"
    await eventually(
        lambda: get(system, path), lambda s: s and s["lines"][1]["derivation"]["events"] == 1000
    )
    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/2026-09/close",
        headers=system.token("provider", [CONTRACT]),
    )
    assert closed.status_code == 202, closed.text
    return await final_statement(system, "2026-09")


async def journal(system: System) -> list[dict[str, Any]]:
    from services.ledger import journal_store

    engine = system.apps["ledger"].state.runtime.engine
    return [e.document() for e in await journal_store.entries(engine, CONTRACT)]


async def test_close_posts_a_hash_chained_final_statement(system: System) -> None:
    final = await setup_closed_september(system, up=995)  # mean 0.995: the 10% tier
    assert final["total"] == "9000.00"  # 10000 - 10% for availability; the other KPIs: no data
    entries = await journal(system)
    assert [e["seq"] for e in entries] == list(range(1, len(final["lines"]) + 1))
    assert chain_breaks(map(JournalEntry.model_validate, entries)) == []
    assert [e["entry_id"] for e in entries] == [e["entry_id"] for e in final["entries"]]
    assert entries[0]["inputs"]["slapay.measurements"]
    again = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/2026-09/close", headers=system.token()
    )
    assert again.status_code == 409
    running = datetime.now(UTC).strftime("%Y-%m")
    early = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/{running}/close", headers=system.token()
    )
    assert early.status_code == 422
    balance = await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/balance", "auditor"),
        lambda b: b and b["entries"] == len(entries),
    )
    assert balance == {**balance, "billed": "10000.00", "credits": "-1000.00", "net": "9000.00"}
    before = await get(
        system, f"/v1/contracts/{CONTRACT}/balance?as_of=2020-01-01T00:00:00Z", "auditor"
    )
    assert before["net"] == "0.00"


async def test_late_events_crossing_a_tier_post_a_correction_next_period(system: System) -> None:
    final = await setup_closed_september(system, up=1000)  # availability 1.0: no credit
    assert final["total"] == "10000.00"
    agent = system.token("agent", [CONTRACT])
    # A period closed before the ledger kept tallies gets them from its first late event.
    assert set(await tallies(system)) == {"availability", "latency_ms", "resolution_hours"}
    await forget_tallies(system)
    # 5 late failures: 1000/1005 = 0.99502 < 0.999 → the 10% tier; nothing else changes.
    late = availability(5, 0, prefix="late")
    assert (
        await system.ingest.post("/v1/measurements", json=late, headers=agent)
    ).status_code == 202
    entries = await eventually(
        lambda: journal(system), lambda es: any(e["kind"] == "adjustment" for e in es)
    )
    adjustments = [e for e in entries if e["kind"] == "adjustment"]
    assert len(adjustments) == 1
    correction = adjustments[0]
    assert correction["amount"] == "-1000.00"
    assert correction["period"] == "2026-10" and correction["corrects_period"] == "2026-09"
    assert correction["corrects_line_id"] == f"{CONTRACT}:2026-09:sla_credit:availability"
    assert chain_breaks(map(JournalEntry.model_validate, entries)) == []
    unchanged = await get(system, f"/v1/contracts/{CONTRACT}/statements/2026-09")
    assert unchanged["total"] == "10000.00" and unchanged["status"] == "final"
    october = await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/statements/2026-10"),
        lambda s: s and any(line["kind"] == "adjustment" for line in s["lines"]),
    )
    assert october["status"] == "provisional"
    assert october["total"] == "9000.00"
    # More late successes that stay in the same tier change no money: no new entry.
    more = availability(3, 3, prefix="late-ok")
    assert (
        await system.ingest.post("/v1/measurements", json=more, headers=agent)
    ).status_code == 202
    marker = availability(1, 1, period="2026-10", prefix="marker")
    await system.ingest.post("/v1/measurements", json=marker, headers=agent)
    await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/statements/2026-10"),
        lambda s: s and s["lines"][1]["derivation"]["events"] == 1,
    )
    assert len([e for e in await journal(system) if e["kind"] == "adjustment"]) == 1
    assert (await tallies(system))["availability"].count == 1008


async def tallies(system: System) -> dict[str, Tally]:
    engine = system.apps["ledger"].state.runtime.engine
    async with engine.connect() as conn:
        return await store.tallies(conn, CONTRACT, "2026-09")


async def forget_tallies(system: System) -> None:
    engine = system.apps["ledger"].state.runtime.engine
    async with engine.begin() as conn:
        await store.keep_tallies(conn, CONTRACT, "2026-09", {})


async def test_disputes_accepted_post_an_adjustment_and_rejected_ones_record_why(
    system: System,
) -> None:
    final = await setup_closed_september(system, up=995)
    credit_line = final["lines"][1]["line_id"]
    customer = system.token("customer", [CONTRACT])
    too_early = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes",
        headers=customer,
        json={"period": "2026-10", "line_id": credit_line, "reason": "x"},
    )
    assert too_early.status_code == 409
    opened = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes",
        headers=customer,
        json={
            "period": "2026-09",
            "line_id": credit_line,
            "reason": "the outage was planned maintenance",
        },
    )
    assert opened.status_code == 201, opened.text
    accepted = opened.json()["dispute_id"]
    second = (
        await system.ledger.post(
            f"/v1/contracts/{CONTRACT}/disputes",
            headers=customer,
            json={"period": "2026-09", "line_id": credit_line, "reason": "again"},
        )
    ).json()["dispute_id"]
    admin = system.token()
    no_amount = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{accepted}/resolve",
        headers=admin,
        json={"decision": "accepted"},
    )
    assert no_amount.status_code == 422
    ok = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{accepted}/resolve",
        headers=admin,
        json={"decision": "accepted", "amount": "500.00", "note": "half"},
    )
    assert ok.status_code == 202
    no = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{second}/resolve",
        headers=admin,
        json={"decision": "rejected", "note": "duplicate"},
    )
    assert no.status_code == 202
    entries = await eventually(
        lambda: journal(system), lambda es: any(e.get("dispute_id") for e in es)
    )
    adjustment = next(e for e in entries if e.get("dispute_id"))
    assert adjustment == {
        **adjustment,
        "amount": "500.00",
        "period": "2026-10",
        "corrects_period": "2026-09",
        "dispute_id": accepted,
    }
    shown = await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/statements/2026-09"),
        lambda s: s and {d["status"] for d in s["disputes"]} == {"accepted", "rejected"},
    )
    rejected = next(d for d in shown["disputes"] if d["status"] == "rejected")
    assert rejected["resolution"]["note"] == "duplicate"
    twice = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes/{second}/resolve",
        headers=admin,
        json={"decision": "accepted", "amount": "1.00"},
    )
    assert twice.status_code == 409


async def test_periods_close_by_themselves_after_grace_days(system: System) -> None:
    assert (
        await system.ledger.post("/v1/contracts", json=terms(grace_days=3), headers=system.token())
    ).status_code == 201
    runtime = system.apps["ledger"].state.runtime
    assert await request_due_closes(runtime, now=datetime(2026, 10, 3, 23, tzinfo=UTC)) == []
    due = await request_due_closes(runtime, now=datetime(2026, 11, 27, tzinfo=UTC))
    # Agreed today, so each period's grace counts from now: nothing is due yet ...
    assert due == []
    later = datetime.now(UTC).replace(microsecond=0)
    from datetime import timedelta

    due = await request_due_closes(runtime, now=later + timedelta(days=3, seconds=1))
    assert ("acme-2026", "2026-09") in due
    final = await final_statement(system, "2026-09")
    assert final["lines"][1]["derivation"]["reason"] == "no_data"
    assert final["total"] == "10000.00"


async def test_the_journal_refuses_updates_and_deletes(system: System) -> None:
    await setup_closed_september(system)
    engine = system.apps["ledger"].state.runtime.engine
    for statement in ("UPDATE journal SET kind = 'x'", "DELETE FROM journal"):
        with pytest.raises(Exception, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    assert len(await journal(system)) == 5
