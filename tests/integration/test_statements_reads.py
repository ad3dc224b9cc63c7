"""Reading from the statements service: the contracts a token may see, statements that no
cache keeps, and a printable statement whose links the client cannot choose."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.seeded import agree, bearer, period_back, terms
from tests.system import System, eventually

pytestmark = pytest.mark.integration
FIRST, SECOND = "listing-first", "listing-second"


async def contracts(system: System, headers: dict[str, str]) -> Any:
    response = await system.statements.get("/v1/contracts", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_contracts_lists_what_the_token_may_see(system: System) -> None:
    await agree(system, FIRST, period_back(2))
    await agree(system, SECOND, period_back(2))
    revised = {**terms(SECOND, period_back(0)), "customer": "Beta AG"}
    put = await system.ledger.put(
        f"/v1/contracts/{SECOND}/terms", json=revised, headers=system.token()
    )
    assert put.status_code == 201, put.text
    admin = system.token()
    listed = await eventually(
        lambda: contracts(system, admin),
        lambda found: len(found) == 2 and found[1]["versions"] == 2,
    )
    assert listed == [
        {
            "contract_id": FIRST,
            "provider": "Hosting Co",
            "customer": "Acme GmbH",
            "currency": "EUR",
            "versions": 1,
        },
        {  # as its latest terms name it
            "contract_id": SECOND,
            "provider": "Hosting Co",
            "customer": "Beta AG",
            "currency": "EUR",
            "versions": 2,
        },
    ]
    for role in ("customer", "provider", "auditor"):
        mine = await contracts(system, bearer(role, [SECOND, "listing-none-such"]))
        assert [c["contract_id"] for c in mine] == [SECOND], role
    assert await contracts(system, bearer("customer", [])) == []
    agent = await system.statements.get("/v1/contracts", headers=bearer("agent", [FIRST]))
    assert agent.status_code == 403
    assert (await system.statements.get("/v1/contracts")).status_code == 401


async def test_statements_are_never_cached(system: System) -> None:
    await agree(system, FIRST, period_back(1))
    period = period_back(1)
    path = f"/v1/contracts/{FIRST}/statements"
    reader = bearer("customer", [FIRST])
    await eventually(
        lambda: system.statements.get(f"{path}/{period}", headers=reader),
        lambda r: r.status_code == 200,
    )
    for url, accept in [
        (path, "application/json"),
        (f"{path}/{period}", "application/json"),
        (f"{path}/{period}", "text/csv"),
        (f"{path}/{period}", "text/html"),
        (f"/v1/contracts/{FIRST}/balance", "application/json"),
    ]:
        response = await system.statements.get(url, headers={**reader, "Accept": accept})
        assert response.status_code == 200, (url, accept, response.text)
        assert response.headers["content-type"].startswith(accept)
        assert response.headers["cache-control"] == "no-store", (url, accept)


async def test_the_printable_statement_links_its_keys_whatever_the_host_header(
    system: System,
) -> None:
    await agree(system, FIRST, period_back(1))
    url = f"/v1/contracts/{FIRST}/statements/{period_back(1)}"
    headers = {**bearer("customer", [FIRST]), "Accept": "text/html", "Host": "evil.example"}
    page = await eventually(
        lambda: system.statements.get(url, headers=headers), lambda r: r.status_code == 200
    )
    assert "evil.example" not in page.text
    assert '<a href="/.well-known/slapay-keys.json">' in page.text
    assert "--keys $STATEMENTS_URL/.well-known/slapay-keys.json" in page.text
