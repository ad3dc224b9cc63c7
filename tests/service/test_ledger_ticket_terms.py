"""Ticket KPIs and their calendar through the ledger's API: refused with 422 naming the
field, nothing published; accepted terms come back as sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.events import TOPIC_CONTRACTS
from tests.fakes import InMemoryBus
from tests.service.test_ledger_terms import ADMIN, ledger
from tests.ticket_examples import CONTRACT, ticket_terms


def without_calendar(terms: dict[str, Any]) -> None:
    del terms["calendar"]


def kpi(**changes: Any) -> Any:
    def change(terms: dict[str, Any]) -> None:
        terms["kpis"][0].update(changes)

    return change


def calendar(**changes: Any) -> Any:
    def change(terms: dict[str, Any]) -> None:
        terms["calendar"] = {**terms["calendar"], **changes}

    return change


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (without_calendar, ["calendar"]),
        (kpi(ticket_metric="first_reply"), ["kpis", 0, "ticket_metric"]),
        (kpi(priority="urgent"), ["kpis", 0, "priority"]),
        (kpi(ticket_metric=None), ["kpis", 0, "priority"]),
        (calendar(timezone="Mars/Olympus"), ["calendar", "timezone"]),
        (
            calendar(holidays={"country": "DE", "subdivision": "XX"}),
            ["calendar", "holidays", "subdivision"],
        ),
    ],
    ids=["no-calendar", "metric", "priority", "priority-alone", "timezone", "subdivision"],
)
async def test_ticket_terms_are_refused_naming_the_field(
    tmp_path: Path, change: Any, loc: list[Any]
) -> None:
    bus = InMemoryBus()
    document = ticket_terms()
    change(document)
    async with ledger(tmp_path, bus) as client:
        refused = await client.post("/v1/contracts", json=document, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert [e["loc"] for e in refused.json()["errors"]] == [loc]
    assert await bus.read_all(TOPIC_CONTRACTS) == []


async def test_ticket_terms_are_agreed_and_read_back(tmp_path: Path) -> None:
    async with ledger(tmp_path, InMemoryBus()) as client:
        created = await client.post("/v1/contracts", json=ticket_terms(), headers=ADMIN)
        assert created.status_code == 201, created.text
        found = (await client.get(f"/v1/contracts/{CONTRACT}", headers=ADMIN)).json()
    terms = found["versions"][-1]
    assert terms["calendar"]["holidays"]["subdivision"] == "BY"
    assert [k["ticket_metric"] for k in terms["kpis"]] == ["response", "resolution"] * 2
