"""Inputs at the edge of what a type can hold get a 4xx problem+json, never a reset
connection, a 500 or a 503: instants that leave the calendar once converted (to UTC, or to
the contract's time zone), and control bytes in path parameters. On SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import infra
from tests.integration.seeded import period_back, terms
from tests.system import System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT = "edge-ny"
PROBLEM = "application/problem+json"


@pytest.fixture(params=["sqlite", "postgres"])
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[System]:
    """The four services on the embedded bus, their tables in SQLite or in Postgres."""
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres_admin")
        overrides["database_url"], name = await infra.create_database(postgres)
    try:
        async with running_system(make_settings(data_dir=tmp_path, **overrides)) as running:
            await _agree_west_of_utc(running)
            yield running
    finally:
        if request.param == "postgres":
            await infra.drop_database(postgres, name)


async def _agree_west_of_utc(running: System) -> None:
    document = {**terms(CONTRACT, period_back(1)), "timezone": "America/New_York"}
    created = await running.ledger.post("/v1/contracts", json=document, headers=admin(running))
    assert created.status_code == 201, created.text
    await eventually(
        lambda: running.clients["reviews"].get(
            f"/v1/contracts/{CONTRACT}/reviews?period={period_back(0)}",
            headers=admin(running),
        ),
        lambda r: r.status_code == 200,
    )


def admin(system: System) -> dict[str, str]:
    return system.token("admin")


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert (response.status_code, response.headers["content-type"]) == (status, PROBLEM), (
        response.text
    )
    if field is not None:
        assert any(field in error.get("loc", []) for error in response.json()["errors"]), (
            response.text
        )


@pytest.mark.parametrize(
    "as_of",
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "10000-01-01T00:00:00Z"],
)
async def test_a_balance_as_of_an_instant_past_the_calendar_is_a_422(
    system: System, as_of: str
) -> None:
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/balance", params={"as_of": as_of}, headers=admin(system)
    )
    assert_problem(response, 422, "as_of")


async def test_a_balance_as_of_the_last_utc_instant_is_answered(system: System) -> None:
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/balance",
        params={"as_of": "9999-12-31T23:59:59+14:00"},  # 09:59:59 UTC that day
        headers=admin(system),
    )
    assert response.status_code in (200, 404), response.text
    assert response.status_code == 200 or response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "occurred_at", ["0001-01-01T00:00:00Z", "0001-01-01T03:00:00+01:00", "1999-12-31T23:00:00Z"]
)
async def test_a_review_dated_before_the_contract_is_a_422_naming_occurred_at(
    system: System, occurred_at: str
) -> None:
    review = {
        "contract_id": CONTRACT,
        "reviewer": "early-bird",
        "rating": 4,
        "dimensions": {"communication": 4, "usefulness": 4, "reliability": 4},
        "occurred_at": occurred_at,
    }
    customer = system.token("customer", [CONTRACT])
    response = await system.clients["reviews"].post("/v1/reviews", json=review, headers=customer)
    assert_problem(response, 422, "occurred_at")


CONTRACT_ROUTES = [
    ("ledger", "GET", "/v1/contracts/{}"),
    ("ledger", "GET", "/v1/contracts/{}/disputes"),
    ("ledger", "POST", "/v1/contracts/{}/periods/2026-01/close"),
    ("reviews", "GET", "/v1/contracts/{}/reviews?period=2026-01"),
    ("statements", "GET", "/v1/contracts/{}/statements"),
    ("statements", "GET", "/v1/contracts/{}/statements/2026-01"),
    ("statements", "GET", "/v1/contracts/{}/balance"),
]
BAD_IDS = ["%00", "edge%00ny", "%01", "edge%0Any", "%7F", "%2500", "Edge-NY"]


@pytest.mark.parametrize("service,method,path", CONTRACT_ROUTES)
async def test_a_contract_id_that_cannot_exist_is_a_422(
    system: System, service: str, method: str, path: str
) -> None:
    answers = {}
    for bad in BAD_IDS:
        response = await system.clients[service].request(
            method, path.format(bad), headers=admin(system)
        )
        answers[bad] = (response.status_code, response.headers.get("content-type"))
    assert answers == dict.fromkeys(BAD_IDS, (422, PROBLEM))


async def test_control_bytes_in_a_query_parameter_are_a_422(system: System) -> None:
    response = await system.clients["reviews"].get(
        f"/v1/contracts/{CONTRACT}/reviews?period=2026-01%00", headers=admin(system)
    )
    assert_problem(response, 422)


async def test_csv_rows_dated_where_the_contract_has_no_period_are_named(system: System) -> None:
    csv = (
        "reviewer,rating,comment,submitted_at\n"
        f"ann,4,,{period_back(0)}-01T12:00:00Z\n"
        "bob,4,,0001-01-01T00:00:00Z\n"
        "carol,4,,1999-12-31T23:00:00Z\n"
    )
    response = await system.clients["reviews"].post(
        f"/v1/contracts/{CONTRACT}/reviews:import",
        content=csv.encode(),
        headers={**system.token("customer", [CONTRACT]), "Content-Type": "text/csv"},
    )
    assert_problem(response, 422)
    assert response.json()["invalid_rows"] == [2, 3]
