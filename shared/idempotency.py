"""`Idempotency-Key` on POSTs: the same key with the same body returns the first response;
with a different body, 422.

- Checked after authentication: only a request whose bearer token is valid, unexpired and
  not revoked has its key looked up; any other request runs as if it sent no key (and gets
  its 401). A key belongs to one token (subject and `jti`) and one path, so no other token,
  nor the same token once revoked, is ever answered from it.
- A key is claimed before the request runs: a concurrent twin gets 409 with `Retry-After`. A
  5xx releases it, so a retry after an outage goes through; a claim left without a response
  (the process died mid-request) is taken over once `idempotency_lease_s` has passed.
- Responses are kept for `idempotency_retention_hours`, then the key is new again; a sweep
  drops them (`sweep`, a worker of every service).
- Nothing names the key or the token in clear: a row's id is a keyed hash of both. A response
  marked `Cache-Control: no-store` (it carries a secret, such as a minted token) is kept
  encrypted (AES-GCM) under a key derived from the server secret, the principal and the
  client's own Idempotency-Key, which the database does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from shared import jsonutil
from shared.auth import InvalidToken, Principal
from shared.db import UtcDateTime
from shared.events import utcnow
from shared.web import problem_response, verify_request_token

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger(__name__)
metadata = MetaData()
requests = Table(
    "idempotent_requests",
    metadata,
    Column("id", String(64), primary_key=True),  # keyed hash of principal, path and key
    Column("request_hash", String(64), nullable=False),  # keyed hash of the body
    Column("claim", String(32), nullable=False),  # the attempt that holds the key
    Column("claimed_at", UtcDateTime, nullable=False, index=True),
    Column("status", Integer),  # NULL while the request runs
    Column("headers", Text),
    Column("body", LargeBinary),
    Column("sealed", Boolean, nullable=False, default=False),
)
HEADER = "idempotency-key"
REPLAYED_HEADERS = ("content-type", "retry-after", "location", "cache-control")
SWEEP_INTERVAL_S = 600.0
CLAIM_ATTEMPTS = 3
"""Looks a claim takes at a taken key: a lapsed row can be taken over by a twin or dropped
by the sweep between the look and the take-over, and is looked at again."""
NONCE_BYTES = 12


@dataclass(frozen=True)
class Slot:
    """Where one principal's key for one path lives, and the key its secrets are sealed with."""

    id: str
    seal_key: bytes

    @classmethod
    def of(cls, secret: str, principal: Principal, path: str, key: str) -> Slot:
        owner = jsonutil.dumps([principal.subject, principal.token_id, path, key])
        row_id = hmac.new(secret.encode(), b"idempotency-slot\0" + owner, hashlib.sha256)
        kdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"idempotency-seal\0" + owner)
        return cls(row_id.hexdigest(), kdf.derive(secret.encode()))

    def seal(self, content: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.seal_key).encrypt(nonce, content, self.id.encode())

    def open(self, sealed: bytes) -> bytes:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return AESGCM(self.seal_key).decrypt(nonce, ciphertext, self.id.encode())


@dataclass(frozen=True)
class Keys:
    """The claims and the kept responses, with the lease and retention they live by."""

    engine: AsyncEngine
    lease: timedelta
    retention: timedelta

    async def claim(self, slot_id: str, digest: str, now: datetime) -> str | Row[Any] | None:
        """A claim (run the request, then `finish` or `release` it), the row to answer from,
        or None when another attempt took the key a moment ago."""
        claim = secrets.token_hex(16)
        fresh = {"request_hash": digest, "claim": claim, "claimed_at": now}
        for _ in range(CLAIM_ATTEMPTS):
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(requests.insert().values(id=slot_id, **fresh))
                return claim
            except IntegrityError:
                pass
            async with self.engine.connect() as conn:
                query = select(requests).where(requests.c.id == slot_id)
                row = (await conn.execute(query)).first()
            if row is None:
                continue  # swept since the insert failed: the key is new
            if not self._lapsed(row, now):
                return row
            blank = {"status": None, "headers": None, "body": None, "sealed": False}
            async with self.engine.begin() as conn:  # take it over, unless a twin just did
                taken = await conn.execute(
                    update(requests)
                    .where(requests.c.id == slot_id, requests.c.claim == row.claim)
                    .values(**fresh, **blank)
                )
            if taken.rowcount == 1:
                return claim
            # a twin took it over (its claim is what the next look finds), or the sweep
            # dropped the lapsed row meanwhile (the key is new again)
        return None

    def _lapsed(self, row: Row[Any], now: datetime) -> bool:
        """Kept past its retention, or claimed past its lease with no response."""
        age = now - row.claimed_at
        return age >= self.retention or (row.status is None and age >= self.lease)

    async def finish(
        self, slot_id: str, claim: str, response: Response, body: bytes, sealed: bool
    ) -> None:
        headers = {k: v for k, v in response.headers.items() if k in REPLAYED_HEADERS}
        async with self.engine.begin() as conn:
            kept = await conn.execute(
                update(requests)
                .where(requests.c.id == slot_id, requests.c.claim == claim)
                .values(
                    status=response.status_code,
                    headers=jsonutil.dumps(headers).decode(),
                    body=body,
                    sealed=sealed,
                )
            )
        if kept.rowcount != 1:
            log.warning("an Idempotency-Key was taken over before its request answered")

    async def release(self, slot_id: str, claim: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(requests).where(requests.c.id == slot_id, requests.c.claim == claim)
            )

    async def purge(self, now: datetime) -> int:
        """Drop every key older than the retention; how many went."""
        async with self.engine.begin() as conn:
            gone = await conn.execute(
                delete(requests).where(requests.c.claimed_at < now - self.retention)
            )
        return int(gone.rowcount or 0)


def keys_of(runtime: Runtime) -> Keys:
    settings = runtime.settings
    return Keys(
        runtime.engine,
        timedelta(seconds=settings.idempotency_lease_s),
        timedelta(hours=settings.idempotency_retention_hours),
    )


async def middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    key = request.headers.get(HEADER)
    principal = _principal(request) if request.method == "POST" and key is not None else None
    if key is None or principal is None:
        return await call_next(request)  # no key, or no valid token: the route answers (401)
    if not 1 <= len(key) <= 255:
        return problem_response(400, "Invalid Idempotency-Key", "1 to 255 characters")
    runtime: Runtime = request.app.state.runtime
    slot = Slot.of(runtime.secret, principal, request.url.path, key)
    # keyed, so the stored fingerprint reveals nothing of a body holding personal data
    digest = hmac.new(runtime.secret.encode(), await request.body(), hashlib.sha256).hexdigest()
    keys = keys_of(runtime)
    try:
        claimed = await keys.claim(slot.id, digest, utcnow())
    except (DBAPIError, OSError):
        return problem_response(503, "Database unavailable", "retry later", {"Retry-After": "5"})
    if not isinstance(claimed, str):
        return _answer(claimed, digest, slot)
    response = await call_next(request)
    content = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    try:
        if response.status_code >= 500:
            await keys.release(slot.id, claimed)
        else:
            secret = "no-store" in response.headers.get("cache-control", "")
            kept = slot.seal(content) if secret else content
            await keys.finish(slot.id, claimed, response, kept, secret)
    except (DBAPIError, OSError):
        # The request's effect stands; release the claim if we can, so a retry is not stuck
        # behind a "still running" key (the domain dedupes a repeated effect).
        log.warning("could not record the response for an Idempotency-Key; releasing it")
        with contextlib.suppress(DBAPIError, OSError):
            await keys.release(slot.id, claimed)
    return Response(content, response.status_code, headers=dict(response.headers))


def _answer(row: Row[Any] | None, digest: str, slot: Slot) -> Response:
    """What a request whose key is taken gets: the kept response, or why there is none."""
    if row is not None and row.request_hash != digest:
        return problem_response(
            422, "Idempotency-Key reused", "this key was used with a different body"
        )
    if row is None or row.status is None:
        return problem_response(
            409,
            "Request in progress",
            "the first request with this key is still running",
            {"Retry-After": "1"},
        )
    body = slot.open(bytes(row.body)) if row.sealed else bytes(row.body)
    headers = {**jsonutil.loads(row.headers), "idempotent-replayed": "true"}
    return Response(body, row.status, headers=headers)


def _principal(request: Request) -> Principal | None:
    """The caller, authenticated exactly as the routes do (revocation included)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return verify_request_token(request, token.strip())
    except InvalidToken:
        return None


async def sweep(runtime: Runtime) -> None:
    """A worker of every service: drops the kept responses past their retention."""
    keys = keys_of(runtime)
    while True:
        try:
            purged = await keys.purge(utcnow())
            if purged:
                log.info("dropped %d expired Idempotency-Key responses", purged)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not drop expired Idempotency-Key responses: %s", exc)
        await asyncio.sleep(SWEEP_INTERVAL_S)
