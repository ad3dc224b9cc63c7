"""Ticket KPIs end to end, on both buses: a Bavarian helpdesk's June billed from its ticket
events through the HTTP API, a late event corrected, and the audit agreeing
(numbers worked out by hand in `tests/ticket_examples.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.ledger import store
from services.ledger.replay import replay
from shared import db
from tests.integration.test_audit import audit_cli
from tests.integration.test_replay import published
from tests.system import System, eventually
from tests.ticket_examples import CONTRACT, EXPECTED, JULY, JUNE, PERIOD, TOTAL, ticket_terms

pytestmark = pytest.mark.integration
STATEMENT = f"/v1/contracts/{CONTRACT}/statements/{PERIOD}"
LATE = {
    "contract_id": CONTRACT,
    "ticket_id": "C",
    "type": "responded",
    "at": "2026-06-16T10:00:00+02:00",
    "priority": "P1",  # escalated: C now counts against the P1 KPIs, no longer P2
}


async def statement(system: System) -> Any:
    response = await system.statements.get(STATEMENT, headers=system.token("auditor", [CONTRACT]))
    return response.json() if response.status_code == 200 else None


async def period_tickets(system: System, kpi: str, period: str = PERIOD) -> Any:
    return await system.ledger.get(
        f"/v1/contracts/{CONTRACT}/periods/{period}/tickets",
        params={"kpi": kpi},
        headers=system.token("customer", [CONTRACT]),
    )


def ticket_lines(document: dict[str, Any]) -> dict[str, tuple[str, int, float]]:
    return {
        line["kpi"]: (line["amount"], line["derivation"]["tickets"], line["derivation"]["value"])
        for line in document["lines"]
        if line["kind"] == "sla_credit"
    }


async def journal(system: System) -> list[dict[str, Any]]:
    from services.ledger import journal_store

    engine = system.apps["ledger"].state.runtime.engine
    return [e.document() for e in await journal_store.entries(engine, CONTRACT)]


async def test_a_month_of_tickets_is_billed_corrected_verified_and_replayed(
    system: System, tmp_path: Path
) -> None:
    created = await system.ledger.post("/v1/contracts", json=ticket_terms(), headers=system.token())
    assert created.status_code == 201, created.text
    agent = system.token("agent", [CONTRACT])
    posted = await system.ingest.post(
        "/v1/tickets/events", json={"events": JUNE + JULY}, headers=agent
    )
    assert posted.status_code == 202, posted.text
    assert posted.json() == {"accepted": len(JUNE + JULY), "duplicates": 0}

    provisional = await eventually(
        lambda: statement(system),
        lambda s: s is not None and ticket_lines(s)["p1_response"][1] == 4,
    )
    expected = {kpi: (amount, n, float(value)) for kpi, (amount, n, value) in EXPECTED.items()}
    assert ticket_lines(provisional) == expected
    assert provisional["total"] == TOTAL

    closed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/periods/{PERIOD}/close",
        headers=system.token("provider", [CONTRACT]),
    )
    assert closed.status_code == 202, closed.text
    final = await eventually(lambda: statement(system), lambda s: s and s["status"] == "final")
    assert ticket_lines(final) == expected
    assert final["total"] == TOTAL
    entries = await journal(system)
    assert all("slapay.tickets" in e["inputs"] for e in entries)
    token = system.token("customer", [CONTRACT])["Authorization"].removeprefix("Bearer ")
    page = await system.statements.get(
        f"/contracts/{CONTRACT}", headers={"Cookie": f"slapay_session={token}"}
    )
    assert page.status_code == 200, page.text
    shown = page.text[page.text.index("<h4>Tickets</h4>") :]
    # p1_response: 4 tickets, 2 past 1 h (B and D); p2_resolution: C, no threshold
    assert '<td>p1_response</td><td class="num">4</td><td class="num">2</td>' in shown
    # C's 18 h are past the first tier's 16 h
    assert '<td>p2_resolution</td><td class="num">1</td><td class="num">1</td>' in shown
    view = await period_tickets(system, "p1_response")
    assert view.status_code == 200, view.text
    counted = view.json()
    hours = {t["ticket_id"]: (t["hours"], t["breached"]) for t in counted["items"]}
    assert hours == {
        "A": ("0.5", False),
        "B": ("1.5", True),
        "D": ("9", True),
        "E": ("0.75", False),
    }
    line = next(x for x in final["lines"] if x.get("kpi") == "p1_response")["derivation"]
    assert (counted["tickets"], counted["events_digest"]) == (4, line["events_digest"])
    refused = {
        kpi: (await period_tickets(system, kpi, period)).status_code
        for kpi, period in (("nope", PERIOD), ("p1_response", "2026-05"))
    }
    assert refused == {"nope": 404, "p1_response": 409}

    late = await system.ingest.post("/v1/tickets/events", json={"events": [LATE]}, headers=agent)
    assert late.status_code == 202, late.text
    adjustments = await eventually(
        lambda: journal(system),
        lambda es: len([e for e in es if e["kind"] == "adjustment"]) == 3,
    )
    corrections = {
        e["corrects_line_id"].split(":")[-1]: e["amount"]
        for e in adjustments
        if e["kind"] == "adjustment"
    }
    # P1: C's 4 h response and 18 h resolution are both breaches: 2 of 5 within, tier 10 %;
    # P2 has no ticket left: no data, no credit.
    assert corrections == {
        "p1_response": "-500.00",
        "p1_resolution": "-500.00",
        "p2_resolution": "300.00",
    }

    cli = await audit_cli(system, period=PERIOD, contract=CONTRACT)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert cli.stdout.startswith(f"OK: {CONTRACT} {PERIOD}")
    # The closed period's tickets stay those its final statement counted.
    assert (await period_tickets(system, "p1_response")).json() == counted

    runtime = system.apps["ledger"].state.runtime
    await eventually(lambda: published(runtime.bus), lambda n: n >= len(adjustments))
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}")
    try:
        await db.create_schema(engine, store.metadata)
        outcomes = await replay(runtime.bus, engine)
    finally:
        await engine.dispose()
    assert [(o.contract_id, o.entries) for o in outcomes] == [(CONTRACT, len(adjustments))]
    assert outcomes[0].matches, outcomes


async def test_a_late_ticket_event_corrects_a_later_closed_period(system: System) -> None:
    """H's answer on 1 July was on the bus before July closed, its opening on 30 June (17:00,
    P1) only after June and July had closed: June is unchanged (H ran 1 h, not past the
    threshold, at June's close), July gains H — a 1.25 h response and a resolution running
    past 8 h at close — so both its P1 lines go to the 10 % tier, corrected into August."""
    await system.ledger.post("/v1/contracts", json=ticket_terms(), headers=system.token())
    agent = system.token("agent", [CONTRACT])
    answer = {**LATE, "ticket_id": "H", "at": "2026-07-01T09:15:00+02:00", "priority": None}
    posted = await system.ingest.post(
        "/v1/tickets/events", json={"events": [*JUNE, *JULY, answer]}, headers=agent
    )
    assert posted.status_code == 202, posted.text
    await eventually(
        lambda: statement(system), lambda s: s is not None and ticket_lines(s)["p1_response"][1]
    )
    for period in (PERIOD, "2026-07"):
        closed = await system.ledger.post(
            f"/v1/contracts/{CONTRACT}/periods/{period}/close", headers=system.token()
        )
        assert closed.status_code == 202, closed.text
    july = f"/v1/contracts/{CONTRACT}/statements/2026-07"
    final = await eventually(
        lambda: system.statements.get(july, headers=system.token("auditor", [CONTRACT])),
        lambda r: r.status_code == 200 and r.json()["status"] == "final",
    )
    assert final.json()["total"] == "10000.00"  # no P1 ticket stopped in July, none ran past

    opened = {**answer, "type": "opened", "at": "2026-06-30T17:00:00+02:00", "priority": "P1"}
    late = await system.ingest.post("/v1/tickets/events", json={"events": [opened]}, headers=agent)
    assert late.status_code == 202, late.text
    entries = await eventually(
        lambda: journal(system),
        lambda es: len([e for e in es if e["kind"] == "adjustment"]) == 2,
    )
    corrections = {
        (e["corrects_period"], e["period"], e["corrects_line_id"].split(":")[-1]): e["amount"]
        for e in entries
        if e["kind"] == "adjustment"
    }
    assert corrections == {
        ("2026-07", "2026-08", "p1_response"): "-1000.00",
        ("2026-07", "2026-08", "p1_resolution"): "-1000.00",
    }
    for period in (PERIOD, "2026-07"):
        cli = await audit_cli(system, period=period, contract=CONTRACT)
        assert cli.returncode == 0, cli.stdout + cli.stderr
