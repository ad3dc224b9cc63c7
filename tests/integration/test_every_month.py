"""Every month is billed, on both buses: a month in which nothing arrived has its statement
(the base fee), is listed, closes by itself and posts its entries like any other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ledger.workers import announce_periods, request_due_closes
from tests.integration.seeded import agree, period_back
from tests.system import System, eventually

pytestmark = pytest.mark.integration
CONTRACT = "quiet-co"


async def _statements(system: System) -> Any:
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements", headers=system.token("customer", [CONTRACT])
    )
    return response.json() if response.status_code == 200 else []


async def test_months_without_events_are_listed_closed_and_posted(system: System) -> None:
    await agree(system, CONTRACT, period_back(3))
    months = [period_back(n) for n in (3, 2, 1, 0)]
    listed = await eventually(lambda: _statements(system), lambda s: len(s) == 4)
    assert [s["period"] for s in listed] == months
    assert {(s["status"], s["total"]) for s in listed} == {("provisional", "10000.00")}

    runtime = system.apps["ledger"].state.runtime
    due = await request_due_closes(runtime, datetime.now(UTC) + timedelta(days=4))
    assert sorted(due) == [(CONTRACT, p) for p in months[:3]]
    closed = await eventually(
        lambda: _statements(system),
        lambda s: [x["status"] for x in s] == ["final", "final", "final", "provisional"],
    )
    assert all(s["total"] == "10000.00" for s in closed)
    balance = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/balance", headers=system.token("customer", [CONTRACT])
    )
    assert balance.json()["billed"] == "30000.00"


async def test_a_new_month_is_announced_once(system: System) -> None:
    await agree(system, CONTRACT, period_back(0))
    runtime = system.apps["ledger"].state.runtime
    announced: set[tuple[str, str]] = set()
    next_month = datetime.now(UTC).replace(day=1) + timedelta(days=40)
    assert await announce_periods(runtime, announced, next_month) == {(CONTRACT, period_back(-1))}
    assert await announce_periods(runtime, announced, next_month) == set()
