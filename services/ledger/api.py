"""HTTP edge of the ledger: contracts, tokens, period closes, disputes, dead letters.

Each route validates its request, calls one handler (`handlers.py`) and maps what it
refuses to problem+json."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ledger import deadletter_store, handlers
from services.ledger.ticket_view import PeriodTicketsView
from shared import asyncapi, revocation
from shared.auth import READER_ROLES, Principal, Role, issue_token
from shared.bus import BusUnavailable
from shared.catalogue import catalogue
from shared.core.terms import KPI_NAME_PATTERN, Terms
from shared.events import CONTRACT_ID_PATTERN, Period
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible, inline_schema, require, validation_errors

router = APIRouter(prefix="/v1")
Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require(*READER_ROLES))]
Closer = Annotated[Principal, Depends(require("admin", "provider"))]
Party = Annotated[Principal, Depends(require("customer", "provider"))]
TermsBody = Annotated[dict[str, Any], Body(description="Contract terms (docs/architecture.md)")]
TERMS_DOC = {"requestBody": {"content": {"application/json": {"schema": inline_schema(Terms)}}}}
T = TypeVar("T")


class Created(BaseModel):
    contract_id: str
    version: int


class ContractView(BaseModel):
    contract_id: str
    versions: list[dict[str, Any]]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    contracts: list[Annotated[str, Field(pattern=CONTRACT_ID_PATTERN)]] = Field(
        default_factory=list
    )
    ttl_days: float = Field(default=30, gt=0, le=3650)


class TokenIssued(BaseModel):
    token: str


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: Period
    line_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=5000)
    evidence_event_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class DisputeCreated(BaseModel):
    dispute_id: str


class ResolutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["accepted", "rejected"]
    amount: str | None = Field(
        default=None, description="decimal string; the adjustment if accepted"
    )
    note: str = Field(default="", max_length=5000)


class DeadLetterView(BaseModel):
    event_id: str | None
    topic: str
    contract_id: str
    reason: str
    kind: str
    group: str | None
    dead_lettered_at: datetime
    measurement_id: str | None = None


async def _handled(step: Awaitable[T]) -> T:
    """The handler's result, or the problem it was refused with."""
    try:
        return await step
    except handlers.Refused as exc:
        if exc.field is None:
            raise Problem(exc.status, exc.title, exc.detail) from exc
        errors = [{"loc": [exc.field], "msg": exc.detail}]
        raise Problem(exc.status, exc.title, exc.detail, errors=errors) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc


def _terms(document: dict[str, Any]) -> Terms:
    try:
        return Terms.model_validate(document)
    except ValidationError as exc:
        raise Problem(422, "Invalid terms", errors=validation_errors(exc.errors())) from exc


def _by(principal: Principal) -> str:
    return f"{principal.role}:{principal.subject}"


@router.post(
    "/contracts",
    status_code=201,
    response_model=Created,
    tags=["contracts"],
    openapi_extra=TERMS_DOC,
)
async def create_contract(document: TermsBody, runtime: RuntimeDep, principal: Admin) -> Created:
    terms = _terms(document)
    by = f"admin:{principal.subject}"
    agreeing = handlers.agree(runtime.engine, runtime.bus, terms, by, revision=False)
    return Created(contract_id=terms.contract_id, version=await _handled(agreeing))


@router.put(
    "/contracts/{contract_id}/terms",
    status_code=201,
    response_model=Created,
    tags=["contracts"],
    openapi_extra=TERMS_DOC,
)
async def revise_terms(
    contract_id: str, document: TermsBody, runtime: RuntimeDep, principal: Admin
) -> Created:
    terms = _terms({**document, "contract_id": document.get("contract_id", contract_id)})
    if terms.contract_id != contract_id:
        raise Problem(422, "contract_id does not match the URL", errors=[{"loc": ["contract_id"]}])
    by = f"admin:{principal.subject}"
    revising = handlers.agree(runtime.engine, runtime.bus, terms, by, revision=True)
    return Created(contract_id=contract_id, version=await _handled(revising))


@router.get("/contracts/{contract_id}", response_model=ContractView, tags=["contracts"])
async def get_contract(contract_id: str, runtime: RuntimeDep, principal: Reader) -> ContractView:
    ensure_visible(principal, contract_id)
    found = await handlers.versions(runtime.engine, contract_id)
    if not found:
        raise Problem(404, "Not found", f"no contract {contract_id!r}")
    return ContractView(contract_id=contract_id, versions=found)


@router.post("/tokens", status_code=201, response_model=TokenIssued, tags=["auth"])
async def create_token(
    request: TokenRequest, response: Response, runtime: RuntimeDep, _: Admin
) -> TokenIssued:
    """`no-store`: no cache keeps the token, and an Idempotency-Key keeps it only sealed."""
    response.headers["Cache-Control"] = "no-store"
    token = issue_token(runtime.secret, request.role, request.contracts, request.ttl_days)
    return TokenIssued(token=token)


@router.delete("/tokens/{jti}", status_code=204, response_class=Response, tags=["auth"])
async def revoke_token(
    jti: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$", description="the token's jti")],
    runtime: RuntimeDep,
    principal: Admin,
) -> Response:
    """Every service refuses the token within seconds (401); revoking again changes nothing."""
    await _handled(revocation.revoke(runtime, jti, f"admin:{principal.subject}"))
    return Response(status_code=204)


@router.post("/contracts/{contract_id}/periods/{period}/close", status_code=202, tags=["periods"])
async def close_period(
    contract_id: str, period: Period, runtime: RuntimeDep, principal: Closer
) -> JSONResponse:
    ensure_visible(principal, contract_id)
    now = datetime.now(UTC)
    closing = handlers.request_close(
        runtime.engine, runtime.bus, contract_id, period, _by(principal), now
    )
    await _handled(closing)
    return JSONResponse({"contract_id": contract_id, "period": period, "status": "closing"}, 202)


@router.get(
    "/contracts/{contract_id}/periods/{period}/tickets",
    response_model=PeriodTicketsView,
    tags=["periods"],
)
async def period_tickets(
    contract_id: str,
    period: Period,
    kpi: Annotated[str, Query(pattern=KPI_NAME_PATTERN, description="a ticket KPI's name")],
    runtime: RuntimeDep,
    principal: Reader,
) -> PeriodTicketsView:
    """The tickets a ticket KPI counted in the period, each with its business hours, breach
    and spans (docs/tickets.md); a closed period's as its final statement counted them."""
    ensure_visible(principal, contract_id)
    now = datetime.now(UTC)
    return await _handled(handlers.period_tickets(runtime.engine, contract_id, period, kpi, now))


@router.post(
    "/contracts/{contract_id}/disputes",
    status_code=201,
    response_model=DisputeCreated,
    tags=["disputes"],
)
async def open_dispute(
    contract_id: str, body: DisputeIn, runtime: RuntimeDep, principal: Party
) -> DisputeCreated:
    ensure_visible(principal, contract_id)
    opening = handlers.open_dispute(
        runtime.engine,
        runtime.bus,
        contract_id,
        body.period,
        body.line_id,
        body.reason,
        body.evidence_event_ids,
        _by(principal),
    )
    return DisputeCreated(dispute_id=await _handled(opening))


@router.post(
    "/contracts/{contract_id}/disputes/{dispute_id}/resolve", status_code=202, tags=["disputes"]
)
async def resolve_dispute(
    contract_id: str, dispute_id: str, body: ResolutionIn, runtime: RuntimeDep, principal: Admin
) -> JSONResponse:
    ensure_visible(principal, contract_id)
    resolving = handlers.resolve_dispute(
        runtime.engine, runtime.bus, contract_id, dispute_id, body.decision, body.amount, body.note
    )
    await _handled(resolving)
    return JSONResponse({"dispute_id": dispute_id, "status": "resolving"}, 202)


@router.get("/contracts/{contract_id}/disputes", tags=["disputes"])
async def list_disputes(
    contract_id: str, runtime: RuntimeDep, principal: Reader
) -> list[dict[str, object]]:
    ensure_visible(principal, contract_id)
    return await _handled(handlers.disputes(runtime.engine, contract_id))


@router.get("/deadletter", response_model=list[DeadLetterView], tags=["operations"])
async def list_dead_letters(
    runtime: RuntimeDep,
    _: Admin,
    contract: Annotated[str | None, Query(pattern=CONTRACT_ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Records a consumer set aside (unreadable, failing every attempt, or refused), newest
    first: what never reached a statement, and why."""
    return await deadletter_store.listing(runtime.engine, contract, limit)


@router.get("/events/catalogue", tags=["events"])
async def event_catalogue() -> dict[str, Any]:
    """JSON Schema of every event type on the bus (public: it describes no data)."""
    return catalogue()


@router.get("/events/asyncapi.json", tags=["events"])
async def event_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, event type, key and header (public: it
    describes no data; `docs/asyncapi.yaml` is the same document)."""
    return asyncapi.document()
