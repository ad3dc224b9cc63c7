"""The journal end to end, on both buses: close, corrections for late events, disputes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from services.demo import demo_terms
from services.ledger.workers import request_due_closes
from shared.journal import chain_breaks
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

    return await journal_store.entries(system.apps["ledger"].state.runtime.engine, CONTRACT)


async def test_close_posts_a_hash_chained_final_statement(system: System) -> None:
    final = await setup_closed_september(system, up=995)  # mean 0.995: the 10% tier
    assert final["total"] == "9000.00"  # 10000 - 10% for availability; the other KPIs: no data
    entries = await journal(system)
    assert [e["seq"] for e in entries] == list(range(1, len(final["lines"]) + 1))
    assert chain_breaks(entries) == []
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
