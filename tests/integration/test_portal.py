"""Exports and the portal over HTTP, on both buses: content types, access control, the
session cookie."""

from __future__ import annotations

import csv
import io

import pytest

from shared.auth import issue_token
from tests.integration.test_ledger import CONTRACT, setup_closed_september
from tests.integration.test_tickets import statement, ticket_lines
from tests.system import SECRET, System, eventually
from tests.ticket_examples import CONTRACT as HELPDESK
from tests.ticket_examples import JULY, JUNE, PERIOD, ticket_terms

pytestmark = pytest.mark.integration
STATEMENT = f"/v1/contracts/{CONTRACT}/statements/2026-09"


async def test_csv_and_html_exports_with_the_json_routes_access_control(system: System) -> None:
    final = await setup_closed_september(system, up=995)
    customer = system.token("customer", [CONTRACT])
    as_csv = await system.statements.get(STATEMENT, headers={**customer, "Accept": "text/csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["line_id"] for r in rows] == [line["line_id"] for line in final["lines"]]
    assert [r["amount"] for r in rows] == [line["amount"] for line in final["lines"]]
    page = await system.statements.get(STATEMENT, headers={**customer, "Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for shown in ("Hosting Co", "Acme GmbH", "9000.00", final["signature"]["kid"], "valid"):
        assert shown in page.text
    assert (await system.statements.get(STATEMENT, headers=customer)).json() == final
    by_query = await system.statements.get(STATEMENT + "?format=csv", headers=customer)
    assert by_query.text == as_csv.text
    refused = await system.statements.get(STATEMENT, headers={**customer, "Accept": "image/png"})
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "application/problem+json"
    other = system.token("customer", ["other-contract"])
    for accept in ("application/json", "text/csv", "text/html"):
        hidden = await system.statements.get(STATEMENT, headers={**other, "Accept": accept})
        assert hidden.status_code == 404, accept
        assert hidden.headers["content-type"] == "application/problem+json"
    anonymous = await system.statements.get(STATEMENT, headers={"Accept": "text/csv"})
    assert anonymous.status_code == 401
    agent = system.token("agent", [CONTRACT])
    assert (await system.statements.get(STATEMENT, headers=agent)).status_code == 403


async def test_the_portal_signs_in_with_a_token_and_shows_only_its_contracts(
    system: System,
) -> None:
    await setup_closed_september(system, up=995)
    client = system.statements
    start = await client.get("/")
    assert start.status_code == 200 and 'name="token"' in start.text
    assert "script-src" not in start.headers["content-security-policy"]  # no script at all
    wrong = await client.post("/sign-in", data={"token": "not-a-token"})
    assert wrong.status_code == 401 and "Invalid token" in wrong.text
    agent = issue_token(SECRET, "agent", [CONTRACT])
    assert (await client.post("/sign-in", data={"token": agent})).status_code == 403
    token = issue_token(SECRET, "customer", [CONTRACT])
    foreign = await client.post(
        "/sign-in", data={"token": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    signed = await client.post("/sign-in", data={"token": f"Bearer {token}\n"})
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    client.cookies.clear()  # from here on, each request says what it carries
    session = {"Cookie": f"slapay_session={token}"}
    home = await client.get("/", headers=session)
    assert f'href="/contracts/{CONTRACT}"' in home.text and "9000.00" in home.text
    page = await client.get(f"/contracts/{CONTRACT}", headers=session)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.text.count('<svg class="chart"') >= 2
    assert "valid, signed by key" in page.text and "?format=csv" in page.text
    # The API accepts the session cookie too: the portal's download links work.
    download = await client.get(STATEMENT + "?format=csv", headers=session)
    assert download.status_code == 200 and download.text.startswith("contract_id,")
    elsewhere = await client.get("/contracts/other-contract", headers=session)
    assert elsewhere.status_code == 404
    assert (await client.get(f"/contracts/{CONTRACT}")).status_code == 303  # not signed in
    out = await client.post("/sign-out", headers=session)
    assert out.status_code == 303 and 'slapay_session=""' in out.headers["set-cookie"]
    css = await client.get("/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await client.get("/static/..%2Fapi.py")).status_code == 404


async def test_an_admin_sees_every_contract_with_statements(system: System) -> None:
    await setup_closed_september(system, up=1000)
    session = {"Cookie": f"slapay_session={issue_token(SECRET, 'admin')}"}
    home = await system.statements.get("/", headers=session)
    assert CONTRACT in home.text and "all contracts" in home.text
    keys = await system.statements.get("/.well-known/slapay-keys.json")
    assert keys.status_code == 200 and keys.json()["keys"][0]["kty"] == "OKP"


async def test_the_portal_lists_each_breached_ticket_with_its_business_hours(
    system: System,
) -> None:
    """The month worked out in `tests/ticket_examples.py`: B answered after 1.5 business
    hours and D unanswered for 9 at close breach the 1 h P1 response; C's 18 h resolution
    the P2 one."""
    created = await system.ledger.post("/v1/contracts", json=ticket_terms(), headers=system.token())
    assert created.status_code == 201, created.text
    posted = await system.ingest.post(
        "/v1/tickets/events",
        json={"events": JUNE + JULY},
        headers=system.token("agent", [HELPDESK]),
    )
    assert posted.status_code == 202, posted.text
    await eventually(
        lambda: statement(system),
        lambda s: s is not None and ticket_lines(s)["p1_response"][1] == 4,
    )
    closed = await system.ledger.post(
        f"/v1/contracts/{HELPDESK}/periods/{PERIOD}/close", headers=system.token()
    )
    assert closed.status_code == 202, closed.text
    await eventually(lambda: statement(system), lambda s: s and s["status"] == "final")
    session = {"Cookie": f"slapay_session={issue_token(SECRET, 'customer', [HELPDESK])}"}
    page = await system.statements.get(f"/contracts/{HELPDESK}", headers=session)
    assert page.status_code == 200, page.text
    shown = page.text[page.text.index("Breached tickets") :]
    for kpi, ticket, hours, clock in (
        ("p1_response", "D", "9", "running at close"),
        ("p1_response", "B", "1.5", "stopped"),
        ("p1_resolution", "E", "18", "running at close"),
        ("p2_resolution", "C", "18", "stopped"),
    ):
        row = (
            f'<tr><td>{kpi}</td><td><code>{ticket}</code></td><td class="num">{hours}</td>'
            f"<td>{clock}</td></tr>"
        )
        assert row in shown, row
    assert "<code>A</code>" not in shown  # answered in half an hour: not breached
