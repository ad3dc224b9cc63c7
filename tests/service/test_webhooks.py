"""The webhooks edge of statements, with a fake bus and a real local receiver: who may
register what, which URLs are refused, what is sent to whom, and what the database keeps."""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import AsyncIterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.statements import webhooks
from services.statements.bootstrap import bootstrap
from shared.auth import issue_token
from shared.events import DisputeOpened, PeriodCloseRequested, make_event
from shared.publishing import publish_events
from tests.doc_snippets import defined_by
from tests.fakes import InMemoryBus
from tests.system import SECRET, eventually, make_settings
from tests.webhook_receiver import Receiver, receiving

A, B = "alpha-co", "beta-co"
QUICK = {
    "webhook_retry_base_s": 0.05,
    "webhook_retry_max_s": 0.2,
    "webhook_poll_interval_s": 0.05,
    "webhook_timeout_s": 5,
}


def bearer(role: str, contracts: list[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role, contracts or [])}"}


ADMIN = bearer("admin")


@contextlib.asynccontextmanager
async def statements(
    tmp_path: Path, bus: InMemoryBus, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = bootstrap(make_settings(data_dir=tmp_path, **QUICK, **settings), bus=bus)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://statements"
        ) as client,
    ):
        yield client


async def register(
    client: httpx.AsyncClient, receiver: Receiver, types: list[str], contracts: list[str]
) -> dict[str, Any]:
    made = await client.post(
        "/v1/webhooks",
        json={"url": receiver.url, "types": types, "contracts": contracts},
        headers=ADMIN,
    )
    assert made.status_code == 201, made.text
    receiver.secret = made.json()["secret"]
    return dict(made.json())


def close(contract_id: str) -> Any:
    requested = PeriodCloseRequested(period="2026-09", requested_by="admin:x")
    return make_event(requested, contract_id=contract_id, source="ledger-api")


def dispute(contract_id: str) -> Any:
    opened = DisputeOpened(
        dispute_id=f"d-{contract_id}", period="2026-09", line_id="l", reason="r", opened_by="c"
    )
    return make_event(opened, contract_id=contract_id, source="ledger-api")


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/", "http://10.0.0.7/"],
)
async def test_private_urls_are_refused_unless_allowed(
    tmp_path: Path, bus: InMemoryBus, url: str
) -> None:
    body = {"url": url, "types": ["statement.finalized"]}
    async with statements(tmp_path, bus, webhook_allow_private=False) as client:
        refused = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [{"loc": ["url"]}]
        public = {**body, "url": "https://93.184.215.14/hook"}
        assert (await client.post("/v1/webhooks", json=public, headers=ADMIN)).status_code == 201
    async with statements(tmp_path, bus, webhook_allow_private=True) as client:
        assert (await client.post("/v1/webhooks", json=body, headers=ADMIN)).status_code == 201


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"url": "http://x.test/", "types": ["no.such.type"]}, 422),
        ({"url": "http://x.test/", "types": ["sla.measurement.recorded"]}, 422),
        ({"url": "http://x.test/", "types": []}, 422),
        ({"url": "ftp://x.test/", "types": ["statement.finalized"]}, 422),
        ({"url": "http://x.test/", "types": ["statement.finalized"], "extra": 1}, 422),
        ({"url": "http://x.test/", "types": ["statement.finalized"], "contracts": ["A!"]}, 422),
    ],
)
async def test_bad_registrations(
    tmp_path: Path, bus: InMemoryBus, body: dict[str, Any], status: int
) -> None:
    async with statements(tmp_path, bus) as client:
        response = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        malformed = await client.post(
            "/v1/webhooks",
            content=b'{"url": ',
            headers={**ADMIN, "Content-Type": "application/json"},
        )
        assert malformed.status_code == 400


async def test_a_party_follows_only_its_own_contracts(tmp_path: Path, bus: InMemoryBus) -> None:
    body = {"url": "http://x.test/hook", "types": ["statement.finalized"]}
    customer = bearer("customer", [A])
    async with statements(tmp_path, bus) as client:
        other = await client.post("/v1/webhooks", json={**body, "contracts": [B]}, headers=customer)
        assert other.status_code == 404
        mine = await client.post("/v1/webhooks", json=body, headers=customer)
        assert mine.status_code == 201, mine.text
        assert mine.json()["contracts"] == [A]
        path = f"/v1/webhooks/{mine.json()['webhook_id']}"
        stranger = bearer("provider", [B])
        assert (await client.get(f"{path}/deliveries", headers=stranger)).status_code == 404
        assert (await client.delete(path, headers=stranger)).status_code == 404
        assert (await client.get(f"{path}/deliveries", headers=ADMIN)).status_code == 200
        everything = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert everything.json()["contracts"] is None
        admins = f"/v1/webhooks/{everything.json()['webhook_id']}/deliveries"
        assert (await client.get(admins, headers=customer)).status_code == 404

        def listed(answer: Any) -> list[str]:
            assert answer.status_code == 200, answer.text
            assert all("secret" not in hook for hook in answer.json()["webhooks"])
            return [hook["webhook_id"] for hook in answer.json()["webhooks"]]

        theirs = [mine.json()["webhook_id"], everything.json()["webhook_id"]]
        assert listed(await client.get("/v1/webhooks", headers=ADMIN)) == theirs
        assert listed(await client.get("/v1/webhooks", headers=customer)) == theirs[:1]
        assert listed(await client.get("/v1/webhooks", headers=stranger)) == []
        assert (await client.delete(path, headers=customer)).status_code == 204
        assert (await client.get(f"{path}/deliveries", headers=ADMIN)).status_code == 404


async def test_the_database_alone_does_not_reveal_the_secret(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = {"url": "http://x.test/hook", "types": ["statement.finalized"]}
    async with statements(tmp_path, bus) as client:
        made = await client.post("/v1/webhooks", json=body, headers=ADMIN)
        assert made.status_code == 201
    secret = made.json()["secret"]
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    stored = _database_files(tmp_path)
    assert made.json()["webhook_id"].encode() in stored  # the webhook itself is kept
    assert secret.encode() not in stored
    assert secret.removeprefix("whsec_").encode() not in stored
    assert raw not in stored and raw.hex().encode() not in stored


async def test_only_the_types_and_contracts_asked_for_are_sent(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    with receiving(lambda m, tries: 204) as hooked, receiving(lambda m, tries: 204) as control:
        async with statements(tmp_path, bus) as client:
            await register(client, hooked, ["dispute.opened"], [A])
            await register(client, control, ["dispute.opened", "period.close.requested"], [])
            events = [close(A), dispute(B), dispute(A)]
            await publish_events(bus, events)
            await eventually(lambda: _ids(control), lambda ids: len(ids) == 3)
            assert await _ids(hooked) == [str(events[2].event_id)]
            got = await _ids(control)  # in order per contract; contracts run side by side
            assert sorted(got) == sorted(str(e.event_id) for e in events)
            assert [i for i in got if i != str(events[1].event_id)] == [
                str(events[0].event_id),
                str(events[2].event_id),
            ]


async def test_a_deleted_webhook_gets_nothing_more(tmp_path: Path, bus: InMemoryBus) -> None:
    with receiving(lambda m, tries: 204) as deleted, receiving(lambda m, tries: 204) as control:
        async with statements(tmp_path, bus) as client:
            hook = await register(client, deleted, ["dispute.opened"], [A])
            await register(client, control, ["dispute.opened"], [A])
            await publish_events(bus, [dispute(A)])
            await eventually(lambda: _ids(deleted), lambda ids: len(ids) == 1)
            gone = await client.delete(f"/v1/webhooks/{hook['webhook_id']}", headers=ADMIN)
            assert gone.status_code == 204
            later = make_event(
                DisputeOpened(
                    dispute_id="d-2", period="2026-09", line_id="l", reason="r", opened_by="c"
                ),
                contract_id=A,
                source="ledger-api",
            )
            await publish_events(bus, [later])
            await eventually(lambda: _ids(control), lambda ids: len(ids) == 2)
            assert len(await _ids(deleted)) == 1


async def test_410_gone_stops_deliveries_to_the_endpoint(tmp_path: Path, bus: InMemoryBus) -> None:
    with receiving(lambda m, tries: 410) as gone:
        async with statements(tmp_path, bus) as client:
            hook = await register(client, gone, ["dispute.opened", "period.close.requested"], [A])
            await publish_events(bus, [close(A), dispute(A)])
            path = f"/v1/webhooks/{hook['webhook_id']}/deliveries"
            log = await eventually(
                lambda: client.get(path, headers=ADMIN),
                lambda r: r.json()["disabled"] is not None,
            )
            assert len(gone.requests) == 1
            statuses = sorted(d["status"] for d in log.json()["deliveries"])
            assert statuses == ["cancelled", "cancelled"]
            assert [a["status_code"] for d in log.json()["deliveries"] for a in d["log"]] == [410]


def _database_files(data_dir: Path) -> bytes:
    """Every byte of the statements database, its write-ahead log included."""
    return b"".join(p.read_bytes() for p in data_dir.glob("statements.db*"))


async def _ids(receiver: Receiver) -> list[str]:
    return receiver.accepted_ids()


async def test_a_failing_delivery_holds_the_next_until_its_retries_run_out(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    first, second = close(A), dispute(A)
    failing = str(first.event_id)
    with receiving(lambda m, tries: 500 if m == failing else 204) as receiver:
        async with statements(tmp_path, bus, webhook_retry_window_s=1.5) as client:
            hook = await register(
                client, receiver, ["dispute.opened", "period.close.requested"], [A]
            )
            await publish_events(bus, [first, second])
            await eventually(lambda: _ids(receiver), lambda ids: ids == [str(second.event_id)])
            tried = [m for m, _ in receiver.requests]
            assert tried.index(str(second.event_id)) == len(tried) - 1  # after every retry
            assert tried.count(failing) >= 2  # retried (how often depends on the machine)
            path = f"/v1/webhooks/{hook['webhook_id']}/deliveries"
            log = (await client.get(path, headers=ADMIN)).json()["deliveries"]
            by_event = {d["event_id"]: d for d in log}
            assert by_event[failing]["status"] == "failed"
            assert by_event[failing]["attempts"] == len(by_event[failing]["log"]) >= 2
            assert {a["status_code"] for a in by_event[failing]["log"]} == {500}
            assert by_event[str(second.event_id)]["status"] == "delivered"


async def test_the_documented_receiver_verifies_and_reads_deliveries(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    got: list[Any] = []
    snippet = defined_by("webhook-receiver", handle=got.append)
    server = ThreadingHTTPServer(("127.0.0.1", 0), snippet["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        async with statements(tmp_path, bus) as client:
            body = {"url": url, "types": ["dispute.opened"], "contracts": [A]}
            made = await client.post("/v1/webhooks", json=body, headers=ADMIN)
            path = f"/v1/webhooks/{made.json()['webhook_id']}/deliveries"
            snippet["SECRET"] = webhooks.serialised(b"not the secret" * 3)
            await publish_events(bus, [dispute(A)])
            await eventually(
                lambda: client.get(path, headers=ADMIN),
                lambda r: (
                    [a["status_code"] for d in r.json()["deliveries"] for a in d["log"]][:1]
                    == [401]
                ),
            )
            assert got == []
            snippet["SECRET"] = made.json()["secret"]
            await eventually(lambda: _count(got), lambda n: n == 1)
    finally:
        server.shutdown()
        server.server_close()
    assert got[0].get_type() == "dispute.opened" and got[0].get_subject() == A


async def _count(items: list[Any]) -> int:
    return len(items)
