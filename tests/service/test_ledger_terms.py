"""Terms out of bounds are refused at the door with 422 problem+json naming the field, and
nothing is published; terms numbers come back as the JSON numbers they were sent as."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.demo import demo_terms
from services.ledger.bootstrap import bootstrap
from shared.auth import issue_token
from shared.events import TOPIC_CONTRACTS
from tests.fakes import InMemoryBus
from tests.system import SECRET, make_settings

ADMIN = {"Authorization": f"Bearer {issue_token(SECRET, 'admin', [])}"}


@contextlib.asynccontextmanager
async def ledger(tmp_path: Path, bus: InMemoryBus) -> AsyncIterator[httpx.AsyncClient]:
    app = bootstrap(make_settings(data_dir=tmp_path), bus=bus)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ledger"
        ) as client,
    ):
        yield client


def terms(**changes: Any) -> dict[str, Any]:
    return {**demo_terms("2026-10"), "contract_id": "bounds-co", **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grace_days": 1_000_000_000}, "grace_days"),  # issue 19 case 4
        ({"effective_from": "0000-01"}, "effective_from"),
        ({"effective_from": "1999-12"}, "effective_from"),
        ({"late_events_months": 121}, "late_events_months"),
        ({"max_credit_percent": 100.5}, "max_credit_percent"),
        ({"max_credit_percent": 33.33333333333333}, "max_credit_percent"),
    ],
)
async def test_terms_out_of_bounds_are_422_naming_the_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    bus = InMemoryBus()
    async with ledger(tmp_path, bus) as client:
        refused = await client.post("/v1/contracts", json=terms(**changes), headers=ADMIN)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["loc"] for e in refused.json()["errors"]] == [[field]]
        assert await bus.read_all(TOPIC_CONTRACTS) == []


async def test_terms_numbers_are_stored_and_shown_as_the_numbers_sent(tmp_path: Path) -> None:
    document = terms(grace_days=366, effective_from="2000-01")
    document["kpis"][0].update(no_data="breach", min_count=12)
    async with ledger(tmp_path, InMemoryBus()) as client:
        created = await client.post("/v1/contracts", json=document, headers=ADMIN)
        assert created.status_code == 201, created.text
        shown = await client.get("/v1/contracts/bounds-co", headers=ADMIN)
    (version,) = shown.json()["versions"]
    availability = version["kpis"][0]
    assert (availability["target"], availability["credits"][0]) == (
        0.999,
        {"breach": 0.999, "percent": 10},
    )
    assert (availability["no_data"], availability["min_count"]) == ("breach", 12)
    assert version["grace_days"] == 366
