"""Idempotency-Key: same key and body → the first response; other body → 422; checked after
authentication (a revoked token replays nothing); a claim left by a crash is released after
its lease; kept responses expire; a response carrying a secret is never kept in clear.

Most tests run the shared middleware in a probe app built like every service (`build_app`),
whose routes count their calls and can be held, failed or made to return a secret."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy import MetaData, func, select

from services.ledger.bootstrap import bootstrap as ledger_bootstrap
from shared import db, idempotency
from shared.auth import Principal, issue_token, verify_token
from shared.events import TOPIC_MEASUREMENTS, utcnow
from shared.runtime import Runtime, build_app
from shared.web import Problem, current_principal
from tests.fakes import InMemoryBus
from tests.service.test_ingest import AGENT, batch, ingest
from tests.service.test_reviews import FakeBus
from tests.system import SECRET, make_settings

THINGS = "/v1/things"
KEY = "Idempotency-Key"


@dataclass
class Probe:
    calls: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event | None = None
    failing: bool = False


router = APIRouter(prefix="/v1")
Caller = Annotated[Principal, Depends(current_principal)]


@router.post("/things", status_code=201)
async def make_thing(
    request: Request, thing: Annotated[dict[str, Any], Body()], _: Caller
) -> dict[str, Any]:
    probe: Probe = request.app.state.probe
    probe.calls += 1
    probe.entered.set()
    if probe.gate is not None:
        await probe.gate.wait()
    if probe.failing:
        raise Problem(503, "Bus unavailable", headers={"Retry-After": "5"})
    return {"call": probe.calls, "thing": thing}


@router.post("/secrets", status_code=201)
async def mint_secret(response: Response, _: Caller) -> dict[str, str]:
    response.headers["Cache-Control"] = "no-store"
    return {"secret": f"s3cret-{uuid.uuid4().hex}"}


@dataclass
class Served:
    client: httpx.AsyncClient
    probe: Probe
    runtime: Runtime


@contextlib.asynccontextmanager
async def probe_app(tmp_path: Path, **settings: Any) -> AsyncIterator[Served]:
    app = build_app(
        "probe", make_settings(data_dir=tmp_path, **settings), MetaData(), [router], bus=FakeBus()
    )
    app.state.probe = Probe()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as client,
    ):
        yield Served(client, app.state.probe, app.state.runtime)


def bearer(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    return headers if key is None else {**headers, "Idempotency-Key": key}


def database_bytes(tmp_path: Path, name: str) -> bytes:
    """Everything SQLite holds for a service, write-ahead log included."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob(f"{name}.db*")))


async def kept_rows(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(idempotency.requests))
    return int(count or 0)


async def test_a_repeated_key_replays_the_first_response(tmp_path: Path) -> None:
    bus = InMemoryBus()
    headers = {**AGENT, "Idempotency-Key": "k-1"}
    async with ingest(tmp_path, bus) as client:
        first = await client.post("/v1/measurements", json=batch("a", None), headers=headers)
        again = await client.post("/v1/measurements", json=batch("a", None), headers=headers)
        other = await client.post("/v1/measurements", json=batch("b"), headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"accepted": 2, "duplicates": 0}
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    # the measurement without an id would have been published twice without the key
    assert len(bus.topics[TOPIC_MEASUREMENTS]) == 2


async def test_a_key_is_released_when_the_request_failed(tmp_path: Path) -> None:
    token = issue_token(SECRET, "agent")
    async with probe_app(tmp_path) as served:
        served.probe.failing = True
        failed = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "k-2"))
        served.probe.failing = False
        retried = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "k-2"))
    assert (failed.status_code, failed.headers["retry-after"]) == (503, "5")
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert served.probe.calls == 2


async def test_a_revoked_admin_token_cannot_replay_the_token_it_minted(tmp_path: Path) -> None:
    """Issue 19, case 8: the key is looked up only for a token that is still valid."""
    admin = issue_token(SECRET, "admin")
    headers = bearer(admin, "mint-1")
    app = ledger_bootstrap(make_settings(data_dir=tmp_path), bus=FakeBus())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://l") as client,
    ):
        minted = await client.post("/v1/tokens", json={"role": "admin"}, headers=headers)
        replayed = await client.post("/v1/tokens", json={"role": "admin"}, headers=headers)
        jti = verify_token(SECRET, admin).token_id
        revoked = await client.delete(f"/v1/tokens/{jti}", headers=bearer(admin))
        after = await client.post("/v1/tokens", json={"role": "admin"}, headers=headers)
    assert (minted.status_code, replayed.status_code, revoked.status_code) == (201, 201, 204)
    token = minted.json()["token"]
    assert replayed.json()["token"] == token
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.headers["cache-control"] == "no-store"
    assert after.status_code == 401
    assert token not in after.text and "idempotent-replayed" not in after.headers
    assert token.encode() not in database_bytes(tmp_path, "ledger")


async def test_invalid_tokens_are_answered_as_if_they_sent_no_key(tmp_path: Path) -> None:
    valid = issue_token(SECRET, "agent", subject="probe-agent")
    forged = issue_token("another-secret-" + "y" * 40, "agent", subject="probe-agent")
    expired = issue_token(
        SECRET, "agent", subject="probe-agent", now=utcnow() - timedelta(days=2), ttl_days=1
    )
    async with probe_app(tmp_path) as served:
        first = await served.client.post(THINGS, json={"n": 1}, headers=bearer(valid, "k"))
        refused = [
            await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "k" * 300))
            for token in (forged, expired, "not-a-jwt")
        ]
        rows = await kept_rows(served.runtime)
    assert first.status_code == 201
    assert [r.status_code for r in refused] == [401, 401, 401]  # not 400 for the long key
    assert rows == 1 and served.probe.calls == 1


async def test_keys_belong_to_one_token_and_one_path(tmp_path: Path) -> None:
    one, other = (
        issue_token(SECRET, "agent", subject="same"),
        issue_token(SECRET, "agent", subject="same"),
    )
    async with probe_app(tmp_path) as served:
        first = await served.client.post(THINGS, json={"n": 1}, headers=bearer(one, "k"))
        by_other = await served.client.post(THINGS, json={"n": 1}, headers=bearer(other, "k"))
        on_other_path = await served.client.post("/v1/secrets", headers=bearer(one, "k"))
    assert [r.status_code for r in (first, by_other, on_other_path)] == [201, 201, 201]
    assert "idempotent-replayed" not in by_other.headers
    assert by_other.json()["call"] == 2


async def test_a_concurrent_twin_is_told_to_retry(tmp_path: Path) -> None:
    token = issue_token(SECRET, "agent")
    async with probe_app(tmp_path) as served:
        served.probe.gate = asyncio.Event()
        running = asyncio.create_task(
            served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "twin"))
        )
        await served.probe.entered.wait()
        twin = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "twin"))
        served.probe.gate.set()
        first = await running
        later = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "twin"))
    assert (twin.status_code, twin.headers["retry-after"]) == (409, "1")
    assert twin.headers["content-type"] == "application/problem+json"
    assert first.status_code == later.status_code == 201
    assert later.headers["idempotent-replayed"] == "true"
    assert later.json() == first.json() and served.probe.calls == 1


async def test_a_key_left_by_a_request_cut_off_is_free_after_the_lease(tmp_path: Path) -> None:
    """Issue 19, case 7: a process killed mid-request never answers or releases its key."""
    token = issue_token(SECRET, "agent")
    async with probe_app(tmp_path, idempotency_lease_s=0.5) as served:
        served.probe.gate = asyncio.Event()  # never opened: the request is cut off inside
        cut = asyncio.create_task(
            served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "cut"))
        )
        await served.probe.entered.wait()
        cut.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cut
        served.probe.gate = None
        within = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "cut"))
        await asyncio.sleep(0.6)
        after = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "cut"))
    assert within.status_code == 409
    assert after.status_code == 201, after.text
    assert "idempotent-replayed" not in after.headers and after.json()["call"] == 2


async def test_a_claim_older_than_the_lease_is_taken_over(tmp_path: Path) -> None:
    token = issue_token(SECRET, "agent")
    principal = verify_token(SECRET, token)
    body = b'{"n": 1}'
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**bearer(token), "Content-Type": "application/json"}
    async with probe_app(tmp_path) as served:  # the default lease, 30 s
        keys = idempotency.keys_of(served.runtime)
        for key, age in (("stale", 31), ("recent", 5)):
            slot = idempotency.Slot.of(SECRET, principal, THINGS, key)
            assert await keys.claim(slot.id, digest, utcnow() - timedelta(seconds=age))
        stale, recent = [
            await served.client.post(THINGS, content=body, headers={**headers, KEY: key})
            for key in ("stale", "recent")
        ]
    assert stale.status_code == 201 and served.probe.calls == 1
    assert recent.status_code == 409


async def test_kept_responses_expire_and_are_purged(tmp_path: Path) -> None:
    token = issue_token(SECRET, "agent")
    async with probe_app(tmp_path, idempotency_retention_hours=1) as served:
        first = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "k"))
        within = await served.client.post(THINGS, json={"n": 2}, headers=bearer(token, "k"))
        keys = idempotency.keys_of(served.runtime)
        later = utcnow() + timedelta(hours=1, seconds=1)
        assert await keys.purge(utcnow()) == 0
        assert await keys.purge(later) == 1
        assert await kept_rows(served.runtime) == 0
        again = await served.client.post(THINGS, json={"n": 2}, headers=bearer(token, "k"))
        # an expired row not yet swept behaves as new too
        async with served.runtime.engine.begin() as conn:
            await conn.execute(
                idempotency.requests.update().values(claimed_at=utcnow() - timedelta(hours=2))
            )
        renewed = await served.client.post(THINGS, json={"n": 3}, headers=bearer(token, "k"))
    assert (first.status_code, within.status_code) == (201, 422)
    assert again.status_code == renewed.status_code == 201
    assert renewed.json() == {"call": 3, "thing": {"n": 3}}


@dataclass(frozen=True)
class SweptWhileLooking(idempotency.Keys):
    """Keys whose sweep drops the lapsed row between the claim's look and its take-over."""

    database: Path = Path()

    def _lapsed(self, row: Any, now: datetime) -> bool:
        lapsed = super()._lapsed(row, now)
        if lapsed:
            with contextlib.closing(sqlite3.connect(self.database)) as swept, swept:
                swept.execute("DELETE FROM idempotent_requests WHERE id = ?", (row.id,))
        return lapsed


async def test_a_lapsed_key_swept_during_its_claim_is_new(tmp_path: Path) -> None:
    database = tmp_path / "keys.db"
    engine = db.create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await db.create_schema(engine, idempotency.metadata)
        keys = SweptWhileLooking(engine, timedelta(seconds=30), timedelta(hours=1), database)
        long_ago = utcnow() - timedelta(hours=2)
        assert isinstance(await keys.claim("slot", "digest", long_ago), str)
        claim = await keys.claim("slot", "digest", utcnow())
        assert isinstance(claim, str)  # not None, which was answered 409 "in progress"
        row = await keys.claim("slot", "digest", utcnow())
    finally:
        await engine.dispose()
    assert row is not None and not isinstance(row, str) and row.claim == claim


async def test_a_secret_is_kept_sealed_and_replayed_in_clear(tmp_path: Path) -> None:
    token = issue_token(SECRET, "admin")
    async with probe_app(tmp_path) as served:
        minted = await served.client.post("/v1/secrets", headers=bearer(token, "s"))
        replayed = await served.client.post("/v1/secrets", headers=bearer(token, "s"))
        async with served.runtime.engine.connect() as conn:
            row = (await conn.execute(select(idempotency.requests))).one()
    secret = minted.json()["secret"]
    assert replayed.json()["secret"] == secret
    assert replayed.headers["idempotent-replayed"] == "true"
    assert row.sealed and secret.encode() not in bytes(row.body)
    assert secret.encode() not in database_bytes(tmp_path, "probe")


async def test_a_database_that_is_down_is_a_503(tmp_path: Path) -> None:
    token = issue_token(SECRET, "agent")
    async with probe_app(tmp_path) as served:
        engine, served.runtime.engine = (
            served.runtime.engine,
            db.create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/gone"),
        )
        try:
            down = await served.client.post(THINGS, json={"n": 1}, headers=bearer(token, "k"))
        finally:
            await served.runtime.engine.dispose()
            served.runtime.engine = engine
    assert (down.status_code, down.headers["retry-after"]) == (503, "5")
    assert down.headers["content-type"] == "application/problem+json"
    assert served.probe.calls == 0
