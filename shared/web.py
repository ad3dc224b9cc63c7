"""The FastAPI edge every service shares: problem+json errors, auth, health endpoints."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared import jsonutil
from shared.auth import InvalidToken, Principal, verify_token

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
BUG_NOT_OUTAGE = (IntegrityError, DataError, ProgrammingError)


class Problem(Exception):
    """An RFC 9457 problem: raise it from a route, it becomes the response."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.headers, self.extra = headers or {}, extra


def problem_response(
    status: int, title: str, detail: str = "", headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    return Response(jsonutil.dumps(body), status, headers=headers, media_type=PROBLEM_JSON)


def validation_errors(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as JSON-safe `{loc, msg, type}` items."""
    return [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON Schema with its `$defs` inlined, for a hand-declared request body."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(400, "Malformed JSON", errors=errors)
        return problem_response(422, "Invalid request", errors=errors)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(ConnectionError, on_database_error)
    document_problems(app)


async def on_database_error(_: Request, exc: Exception) -> Response:
    """A database that cannot be reached is worth a retry (503); a failing query is a bug;
    a value the database cannot hold (SQLSTATE class 22) is the request's fault, and a retry
    would fail the same way (422)."""
    if isinstance(exc, DBAPIError) and isinstance(exc, BUG_NOT_OUTAGE):
        raise exc
    if str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "").startswith("22"):
        log.warning("a request held a value the database refused: %s", str(exc)[:300])
        return problem_response(422, "Invalid request", "a value cannot be stored")
    return problem_response(503, "Database unavailable", type(exc).__name__, {"Retry-After": "5"})


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def document_problems(app: FastAPI) -> None:
    """Say in the OpenAPI what the API sends on errors: problem+json for every 4xx and 5xx
    (FastAPI would document its own `{detail: [...]}` JSON for 422)."""
    generate = app.openapi
    problem = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        schemas.pop("HTTPValidationError", None)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request", **problem}
                responses["4XX"] = {"description": "Client error", **problem}
                responses["5XX"] = {"description": "Unavailable", **problem}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Problem(401, "Authentication required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify_request_token(request, credentials.credentials)
    except InvalidToken as exc:
        raise Problem(
            401, "Invalid token", str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from exc


def verify_request_token(request: Request, token: str) -> Principal:
    """The token's principal, or `InvalidToken`: also once an admin revoked it."""
    principal = verify_token(request.app.state.auth_secret, token)
    if principal.token_id in request.app.state.runtime.revoked:
        raise InvalidToken("the token was revoked")
    return principal


def require(*roles: str) -> Callable[..., Principal]:
    """A dependency admitting only the given roles (403 for the others)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise Problem(403, "Forbidden", f"role {principal.role!r} may not do this")
        return principal

    return dependency


def ensure_visible(principal: Principal, contract_id: str) -> None:
    """A contract the token does not list does not exist for it (404, not 403)."""
    if not principal.may_see(contract_id):
        raise Problem(404, "Not found", f"no contract {contract_id!r}")


def add_health_routes(app: FastAPI, ready_checks: Callable[[], Iterable[Awaitable[None]]]) -> None:
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> Response:
        failures = []
        for check in ready_checks():
            try:
                await check
            except Exception as exc:  # any failure of a dependency means "not ready"
                failures.append(f"{type(exc).__name__}: {exc}"[:300])
        if failures:
            return problem_response(503, "Not ready", "; ".join(failures), {"Retry-After": "5"})
        return JSONResponse({"status": "ready"})
