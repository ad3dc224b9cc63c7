"""Who reaches what: every endpoint of every service by every kind of caller, on the embedded
bus. The table is checked against the apps' routes, so a new endpoint without a row fails.

Columns: each role with a token listing the seeded contract; each non-admin role with a token
for another contract only (404: the seeded contract does not exist for it); no token, an
expired one, a forged one (another secret) and a revoked admin token (401).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from services.statements.session import COOKIE
from shared.auth import issue_token
from shared.settings import SERVICES
from tests.integration.seeded import (
    agree,
    bearer,
    measurements,
    otlp_json,
    period_back,
    remote_write,
    revoke,
    statuses,
    terms,
)
from tests.system import SECRET, System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT, OTHER = "matrix-co", "matrix-other"
ROLES = ("admin", "agent", "customer", "provider", "auditor")
READERS = frozenset({"admin", "customer", "provider", "auditor"})
UNAUTHENTICATED = ("none", "expired", "forged", "revoked")
PRINCIPALS = (*ROLES, *(f"{r}@other" for r in ROLES[1:]), *UNAUTHENTICATED)
NOT_GUARDED = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
NOT_GUARDED |= {"/redoc", "/metrics", "/docs/assets/{name}"}
PUBLIC = {  # describe no one's data, or are the sign-in itself
    ("ledger", "GET", "/v1/events/catalogue"),
    ("ledger", "GET", "/v1/events/asyncapi.json"),
    ("ledger", "GET", "/.well-known/slapay-keys.json"),
    ("statements", "GET", "/.well-known/slapay-keys.json"),
    ("statements", "GET", "/"),
    ("statements", "POST", "/sign-in"),
    ("statements", "POST", "/sign-out"),
    ("statements", "GET", "/static/{name}"),
}


@dataclass
class Seeded:
    system: System
    tokens: dict[str, dict[str, str]]
    closed: str  # a final period with a line to dispute
    line_id: str
    dispute_id: str
    pseudonym: str  # a reviewer the admin may erase
    webhooks: dict[str, str]  # one for each role to delete, and "read" to read


Request = Callable[[Seeded, str], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str  # as the app routes it; its parameters are filled in from `Seeded`
    allowed: frozenset[str]
    ok: int
    request: Request = lambda s, role: {}
    query: str = ""
    cookie: bool = False  # the portal: a session cookie, and a redirect to sign in
    listing: bool = False  # names no contract: a token for another one gets its own list

    def url(self, s: Seeded, role: str) -> str:
        # Each closer closes a period of its own, so both get 202.
        closing = period_back(2 if role == "admin" else 1)
        period = closing if self.path.endswith("/close") else s.closed
        values = {"contract_id": CONTRACT, "period": period, "dispute_id": s.dispute_id}
        values |= {"reviewer_pseudonym": s.pseudonym, "jti": uuid.uuid4().hex}
        hook = role if self.method == "DELETE" and role in s.webhooks else "read"
        values["webhook_id"] = s.webhooks[hook]
        return self.path.format(**values) + self.query

    def expected(self, principal: str) -> int:
        role, _, other = principal.partition("@")
        if principal in UNAUTHENTICATED:
            return 303 if self.cookie else 401
        if role not in self.allowed:
            return 303 if self.cookie else 403
        return 404 if other and not self.listing else self.ok


def review_body(reviewer: str) -> dict[str, Any]:
    scores = {"communication": 4, "usefulness": 4, "reliability": 4}
    return {"contract_id": CONTRACT, "reviewer": reviewer, "rating": 4, "dimensions": scores}


def csv(s: Seeded, role: str) -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    text = f"reviewer,rating,comment,submitted_at\nr-{uuid.uuid4().hex},5,fine,{at}\n"
    return {"content": text.encode(), "headers": {"Content-Type": "text/csv"}}


def dispute(s: Seeded, role: str) -> dict[str, Any]:
    return {"json": {"period": s.closed, "line_id": s.line_id, "reason": f"by {role}"}}


C = "/v1/contracts/{contract_id}"
WRITERS, ADMIN = frozenset({"agent", "admin"}), frozenset({"admin"})
PARTIES = frozenset({"admin", "customer", "provider"})
HOOK = {"url": "http://127.0.0.1:9/hook", "types": ["statement.finalized"], "contracts": [CONTRACT]}
# fmt: off
ROWS = (
    Row("ingest", "POST", "/v1/measurements", WRITERS, 202,
        lambda s, r: {"json": measurements(CONTRACT, 2, f"matrix-{uuid.uuid4().hex}")}),
    # The seeded terms have no ticket KPI: a writer gets past the guard to the door's 422.
    Row("ingest", "POST", "/v1/tickets/events", WRITERS, 422, lambda s, r: {"json": {"events": [
        {"contract_id": CONTRACT, "ticket_id": "T-1", "type": "opened",
         "at": datetime.now(UTC).isoformat()}]}}),
    Row("ingest", "POST", "/v1/prometheus/write", WRITERS, 204,
        lambda s, r: remote_write(CONTRACT)),
    Row("ingest", "POST", "/otlp/v1/metrics", WRITERS, 200, lambda s, r: otlp_json(CONTRACT)),
    Row("reviews", "POST", "/v1/reviews", frozenset({"customer", "admin"}), 202,
        lambda s, r: {"json": review_body(f"r-{uuid.uuid4().hex}")}),
    Row("reviews", "POST", C + "/reviews:import", frozenset({"customer", "admin"}), 202, csv),
    # the seeded period has no burst: an admin is let in and told there is nothing to release
    Row("reviews", "POST", C + "/reviews/{period}/release", ADMIN, 409),
    Row("reviews", "GET", C + "/reviews", READERS, 200, query=f"?period={period_back(0)}"),
    Row("reviews", "POST", "/v1/reviewers:pseudonym", ADMIN, 200,
        lambda s, r: {"json": {"contract_id": CONTRACT, "reviewer": "alice"}}),
    Row("reviews", "DELETE", "/v1/reviewers/{reviewer_pseudonym}", ADMIN, 204),
    Row("ledger", "POST", "/v1/contracts", ADMIN, 201,
        lambda s, r: {"json": terms(f"m-{uuid.uuid4().hex[:8]}", period_back(0))}),
    Row("ledger", "PUT", C + "/terms", ADMIN, 201,
        lambda s, r: {"json": terms(CONTRACT, period_back(-3))}),
    Row("ledger", "GET", C, READERS, 200),
    Row("ledger", "POST", "/v1/tokens", ADMIN, 201,
        lambda s, r: {"json": {"role": "auditor", "contracts": [CONTRACT], "ttl_days": 1}}),
    Row("ledger", "DELETE", "/v1/tokens/{jti}", ADMIN, 204),
    Row("ledger", "POST", C + "/periods/{period}/close", frozenset({"admin", "provider"}), 202),
    Row("ledger", "POST", C + "/disputes", frozenset({"customer", "provider"}), 201, dispute),
    Row("ledger", "POST", C + "/disputes/{dispute_id}/resolve", ADMIN, 202,
        lambda s, r: {"json": {"decision": "rejected", "note": "as agreed"}}),
    Row("ledger", "GET", C + "/disputes", READERS, 200),
    # The seeded terms have no ticket KPI: a reader gets past the guard to the 422.
    Row("ledger", "GET", C + "/periods/{period}/tickets", READERS, 422, query="?kpi=availability"),
    Row("ledger", "GET", "/v1/deadletter", ADMIN, 200, query=f"?contract={CONTRACT}"),
    Row("statements", "GET", "/v1/contracts", READERS, 200, listing=True),
    Row("statements", "GET", C + "/statements", READERS, 200),
    Row("statements", "GET", C + "/statements/{period}", READERS, 200),
    Row("statements", "GET", C + "/statements/{period}/verify", READERS, 200),
    Row("statements", "GET", C + "/balance", READERS, 200),
    Row("statements", "GET", "/contracts/{contract_id}", READERS, 200, cookie=True),
    Row("statements", "POST", "/v1/webhooks", PARTIES, 201, lambda s, r: {"json": HOOK}),
    Row("statements", "GET", "/v1/webhooks", PARTIES, 200, listing=True),
    Row("statements", "GET", "/v1/webhooks/{webhook_id}/deliveries", PARTIES, 200),
    Row("statements", "DELETE", "/v1/webhooks/{webhook_id}", PARTIES, 204),
)
# fmt: on


def flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, also inside routers FastAPI includes lazily."""
    for route in routes:
        nested = getattr(route, "effective_route_contexts", None)
        yield from (nested() if nested else [route])


def test_every_endpoint_has_a_row_and_every_row_an_endpoint() -> None:
    served = set()
    for service in SERVICES:
        app = import_module(f"services.{service}.bootstrap").bootstrap(make_settings())
        for route in flat_routes(app.routes):
            for method in set(getattr(route, "methods", None) or ()) - {"HEAD"}:
                if route.path not in NOT_GUARDED:
                    served.add((service, method, route.path))
    assert served - PUBLIC == {(r.service, r.method, r.path) for r in ROWS}


def credentials(principal: str) -> dict[str, str]:
    role, _, other = principal.partition("@")
    past = datetime.now(UTC) - timedelta(days=10)
    token = {
        "none": None,
        "expired": issue_token(SECRET, "admin", ttl_days=1, now=past),
        "forged": issue_token("not-our-secret-" + "z" * 40, "admin"),
    }.get(principal, "unused")
    if principal in ("none", "expired", "forged"):
        return {"Authorization": f"Bearer {token}"} if token else {}
    return bearer(role, [OTHER] if other else [CONTRACT])


@pytest.fixture(scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seeded]:
    data_dir: Path = tmp_path_factory.mktemp("matrix")
    async with running_system(make_settings(data_dir=data_dir)) as system:
        closed = period_back(3)
        await agree(system, CONTRACT, closed)
        await agree(system, OTHER, closed)
        moment = datetime.strptime(closed + "-10", "%Y-%m-%d").replace(tzinfo=UTC)
        agent = system.token("agent", [CONTRACT])
        posted = await system.ingest.post(
            "/v1/measurements", json=measurements(CONTRACT, 10, "seed", moment), headers=agent
        )
        assert posted.status_code == 202, posted.text
        contract = f"/v1/contracts/{CONTRACT}"
        await system.ledger.post(f"{contract}/periods/{closed}/close", headers=system.token())
        final = await eventually(
            lambda: system.statements.get(
                f"{contract}/statements/{closed}", headers=system.token()
            ),
            lambda r: r.status_code == 200 and r.json()["status"] == "final",
        )
        line_id = final.json()["lines"][0]["line_id"]
        customer = system.token("customer", [CONTRACT])
        claim = {"period": closed, "line_id": line_id, "reason": "x"}
        opened = await system.ledger.post(f"{contract}/disputes", headers=customer, json=claim)
        assert opened.status_code == 201, opened.text
        pseudonyms = {}
        for name in ("alice", "bob"):
            sent = await system.clients["reviews"].post(
                "/v1/reviews", json=review_body(name), headers=customer
            )
            assert sent.status_code == 202, sent.text
            pseudonyms[name] = sent.json()["reviewer_pseudonym"]
        tokens = {p: credentials(p) for p in PRINCIPALS if p != "revoked"}
        tokens["revoked"] = await revoked_admin(system)
        dispute_id = opened.json()["dispute_id"]
        hooks = {}
        for name in ("read", "admin", "customer", "provider"):
            made = await system.statements.post("/v1/webhooks", json=HOOK, headers=system.token())
            assert made.status_code == 201, made.text
            hooks[name] = made.json()["webhook_id"]
        yield Seeded(system, tokens, closed, line_id, dispute_id, pseudonyms["bob"], hooks)


async def revoked_admin(system: System) -> dict[str, str]:
    """An admin token revoked on the ledger, once every service refuses it."""
    headers = system.token()
    await revoke(system, headers)
    await eventually(lambda: statuses(system, headers), lambda s: set(s.values()) == {401})
    return headers


async def test_a_revoked_token_is_refused_by_every_service_within_seconds(
    system: System,
) -> None:
    customer = system.token("customer", [CONTRACT])
    assert 401 not in (await statuses(system, customer)).values()
    await revoke(system, customer)
    await eventually(
        lambda: statuses(system, customer), lambda s: set(s.values()) == {401}, timeout_s=10
    )
    assert 401 not in (await statuses(system, system.token("customer", [CONTRACT]))).values()


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.service} {r.method} {r.path}")
async def test_who_reaches_what(seeded: Seeded, row: Row) -> None:
    client = seeded.system.clients[row.service]
    got = {}
    for principal in PRINCIPALS:
        role = principal.partition("@")[0]
        request = row.request(seeded, role)
        headers = {**request.pop("headers", {})}
        token = seeded.tokens[principal].get("Authorization", "").removeprefix("Bearer ")
        cookies = {}
        if row.cookie and token:
            cookies = {COOKIE: token}
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        client.cookies = cookies  # type: ignore[assignment]
        response = await client.request(
            row.method, row.url(seeded, role), headers=headers, **request
        )
        got[principal] = response.status_code
    client.cookies = {}  # type: ignore[assignment]
    assert got == {p: row.expected(p) for p in PRINCIPALS}
