"""Request limits every service enforces before a route runs: body size (413) and, on
routes that take JSON only, the content type (415). Both answer problem+json.

A pure ASGI middleware: the size is checked against `Content-Length` (which the server
holds the body to); a body of unknown length (chunked) is read up to the limit first.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import Settings
from shared.web import problem_response

JSON = "application/json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Where agents send bulk data (up to 10,000 measurements, survey CSV exports).
BULK_PATHS = (
    "/v1/measurements",
    "/v1/tickets/events",
    "/v1/prometheus/write",
    "/otlp/v1/metrics",
    "reviews:import",
)


class RequestLimits:
    """`max_body_bytes` for every request, `max_bulk_body_bytes` for the bulk paths."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_bulk_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes, self.max_bulk_body_bytes = max_body_bytes, max_bulk_body_bytes
        self._json_only: list[tuple[str, re.Pattern[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self._limit(scope["path"])
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await too_large(limit)(scope, receive, send)
            return
        has_body = declared not in ("", "0") or "transfer-encoding" in headers
        if has_body and self._json_only_route(scope) and not is_json(headers.get("content-type")):
            refusal = problem_response(415, "Unsupported media type", f"this endpoint takes {JSON}")
            await refusal(scope, receive, send)
            return
        if declared:  # the server holds the body to its declared length
            await self.app(scope, receive, send)
            return
        replay = await _read_capped(receive, limit)
        if replay is None:
            await too_large(limit)(scope, receive, send)
            return
        await self.app(scope, replay, send)

    def _limit(self, path: str) -> int:
        bulk = any(path.endswith(suffix) for suffix in BULK_PATHS)
        return self.max_bulk_body_bytes if bulk else self.max_body_bytes

    def _json_only_route(self, scope: Scope) -> bool:
        """Whether the operation this request reaches declares `application/json` as its only
        request body in the app's OpenAPI (forms, CSV and protobuf endpoints say otherwise)."""
        if self._json_only is None:
            self._json_only = json_only_operations(scope["app"].openapi())
        method = scope["method"].lower()
        return any(m == method and p.fullmatch(scope["path"]) for m, p in self._json_only)


def json_only_operations(openapi: dict[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    found = []
    for template, operations in openapi.get("paths", {}).items():
        pattern = re.compile(
            "".join(
                "[^/]+" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]*\})", template)
            )
        )
        for method, operation in operations.items():
            declared = operation.get("requestBody", {}).get("content", {})
            if set(declared) == {JSON}:
                found.append((method, pattern))
    return found


def is_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, in UTF-8 (RFC 8259) if a charset is named."""
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip(' "').lower() not in ("utf-8", "utf8"):
            return False
    return True


async def _read_capped(receive: Receive, limit: int) -> Receive | None:
    """A body of unknown length, read whole up to `limit` bytes (None past it), and a
    `receive` that hands it to the app in one piece."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        more = message.get("more_body", False)
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def too_large(limit: int) -> Response:
    return problem_response(413, "Content too large", f"at most {limit} bytes")


def install(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        RequestLimits,
        max_body_bytes=settings.max_body_bytes,
        max_bulk_body_bytes=settings.max_bulk_body_bytes,
    )
