"""`Idempotency-Key` on POSTs: the same key with the same body returns the first response;
with a different body, 422. Keys are scoped to the caller's token subject.

A key is claimed before the request runs (a concurrent twin gets 409 and retries), and is
released again if the request fails with a 5xx, so a retry after an outage goes through.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from shared import jsonutil
from shared.auth import InvalidToken, verify_token
from shared.db import UtcDateTime
from shared.web import problem_response

log = logging.getLogger(__name__)
metadata = MetaData()
keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(300), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer),
    Column("headers", Text),
    Column("body", LargeBinary),
    Column("created_at", UtcDateTime),
)
HEADER = "idempotency-key"
REPLAYED_HEADERS = ("content-type", "retry-after", "location")


async def middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None:
        return await call_next(request)
    if not 1 <= len(key) <= 255:
        return problem_response(400, "Invalid Idempotency-Key", "1 to 255 characters")
    body = await request.body()
    scope = f"{_subject(request)}:{request.url.path}"
    # keyed, so the stored fingerprint reveals nothing of a body holding personal data
    digest = hmac.new(request.app.state.auth_secret.encode(), body, hashlib.sha256).hexdigest()
    engine: AsyncEngine = request.app.state.runtime.engine
    try:
        claimed = await _claim(engine, scope, key, digest)
    except (DBAPIError, OSError):
        return problem_response(503, "Database unavailable", "retry later", {"Retry-After": "5"})
    if claimed is not None:
        return claimed
    response = await call_next(request)
    content = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
    where = and_(keys.c.scope == scope, keys.c.key == key)
    try:
        async with engine.begin() as conn:
            if response.status_code >= 500:
                await conn.execute(delete(keys).where(where))
            else:
                headers = {k: v for k, v in response.headers.items() if k in REPLAYED_HEADERS}
                await conn.execute(
                    update(keys)
                    .where(where)
                    .values(
                        status=response.status_code,
                        headers=jsonutil.dumps(headers).decode(),
                        body=content,
                    )
                )
    except (DBAPIError, OSError):
        # The request's effect stands; release the claim if we can, so a retry is not stuck
        # behind a "still running" key (the domain dedupes a repeated effect).
        log.warning("could not record the response for an Idempotency-Key; releasing it")
        with contextlib.suppress(DBAPIError, OSError):
            async with engine.begin() as conn:
                await conn.execute(delete(keys).where(where))
    return Response(content, response.status_code, headers=dict(response.headers))


async def _claim(engine: AsyncEngine, scope: str, key: str, digest: str) -> Response | None:
    """None if this request may run; otherwise the response to give instead."""
    try:
        async with engine.begin() as conn:
            await conn.execute(keys.insert().values(scope=scope, key=key, request_hash=digest))
        return None
    except IntegrityError:
        pass
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(keys).where(and_(keys.c.scope == scope, keys.c.key == key)))
        ).first()
    if row is None:
        return problem_response(409, "Request in progress", "retry shortly", {"Retry-After": "1"})
    if row.request_hash != digest:
        return problem_response(
            422, "Idempotency-Key reused", "this key was used with a different body"
        )
    if row.status is None:
        return problem_response(
            409,
            "Request in progress",
            "the first request with this key is still running",
            {"Retry-After": "1"},
        )
    headers = {**jsonutil.loads(row.headers), "idempotent-replayed": "true"}
    return Response(bytes(row.body), row.status, headers=headers)


def _subject(request: Request) -> str:
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        return verify_token(request.app.state.auth_secret, token).subject
    except (InvalidToken, AttributeError):
        return "anonymous"
