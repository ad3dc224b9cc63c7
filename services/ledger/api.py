"""HTTP edge of the ledger: contracts and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ledger import contracts, deadletter_store
from shared import asyncapi, revocation
from shared.auth import READER_ROLES, Principal, Role, issue_token
from shared.bus import BusUnavailable
from shared.catalogue import catalogue
from shared.events import CONTRACT_ID_PATTERN
from shared.runtime import RuntimeDep
from shared.terms import Terms
from shared.web import Problem, ensure_visible, inline_schema, require, validation_errors

router = APIRouter(prefix="/v1")
Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require(*READER_ROLES))]
TermsBody = Annotated[dict[str, Any], Body(description="Contract terms (DESIGN.md)")]
TERMS_DOC = {"requestBody": {"content": {"application/json": {"schema": inline_schema(Terms)}}}}


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


def _terms(document: dict[str, Any]) -> Terms:
    try:
        return Terms.model_validate(document)
    except ValidationError as exc:
        raise Problem(422, "Invalid terms", errors=validation_errors(exc.errors())) from exc


async def _agree(runtime: RuntimeDep, terms: Terms, principal: Principal, revision: bool) -> int:
    try:
        return await contracts.agree(
            runtime.engine, runtime.bus, terms, f"admin:{principal.subject}", revision=revision
        )
    except contracts.ContractExists as exc:
        raise Problem(409, "Contract exists", f"contract {exc} already exists") from exc
    except contracts.UnknownContract as exc:
        raise Problem(404, "Not found", f"no contract {exc}") from exc
    except contracts.RevisionNotLater as exc:
        raise Problem(
            422,
            "Revision must start later",
            f"effective_from must be after {exc}",
            errors=[{"loc": ["effective_from"]}],
        ) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc


@router.post(
    "/contracts",
    status_code=201,
    response_model=Created,
    tags=["contracts"],
    openapi_extra=TERMS_DOC,
)
async def create_contract(document: TermsBody, runtime: RuntimeDep, principal: Admin) -> Created:
    terms = _terms(document)
    version = await _agree(runtime, terms, principal, revision=False)
    return Created(contract_id=terms.contract_id, version=version)


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
    version = await _agree(runtime, terms, principal, revision=True)
    return Created(contract_id=contract_id, version=version)


@router.get("/contracts/{contract_id}", response_model=ContractView, tags=["contracts"])
async def get_contract(contract_id: str, runtime: RuntimeDep, principal: Reader) -> ContractView:
    ensure_visible(principal, contract_id)
    found = await contracts.versions(runtime.engine, contract_id)
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
    try:
        await revocation.revoke(runtime, jti, f"admin:{principal.subject}")
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    return Response(status_code=204)


class DeadLetterView(BaseModel):
    event_id: str | None
    topic: str
    contract_id: str
    reason: str
    kind: str
    group: str | None
    dead_lettered_at: datetime
    measurement_id: str | None = None


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
