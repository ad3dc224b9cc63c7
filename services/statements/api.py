"""HTTP edge of statements: what the parties pay and why."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from services.statements import exports, store
from services.statements.session import Reader
from services.statements.verification import Refused, Verifications
from shared.core import money
from shared.events import AwareDatetime, Period
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible


def no_store(response: Response) -> None:
    """What a party pays is nobody else's business: no cache keeps a copy (the CSV and
    printable exports set the same header themselves, services/statements/exports.py)."""
    response.headers["Cache-Control"] = exports.NO_STORE


router = APIRouter(prefix="/v1", tags=["statements"], dependencies=[Depends(no_store)])
CREDIT_KINDS = {"sla_credit", "credit_cap", "review_adjustment"}


class ContractSummary(BaseModel):
    contract_id: str
    provider: str
    customer: str
    currency: str
    versions: int


class StatementSummary(BaseModel):
    period: str
    status: str
    total: str
    currency: str


class Balance(BaseModel):
    currency: str
    billed: str
    credits: str
    adjustments: str
    net: str
    as_of: datetime
    entries: int


@router.get("/contracts", response_model=list[ContractSummary])
async def list_contracts(runtime: RuntimeDep, principal: Reader) -> list[ContractSummary]:
    """The contracts this token may see: every one for an admin, else those it lists."""
    only = None if principal.role == "admin" else principal.contracts
    found = await store.list_contracts(runtime.engine, only)
    return [ContractSummary.model_validate(c) for c in found]


@router.get("/contracts/{contract_id}/statements", response_model=list[StatementSummary])
async def list_statements(
    contract_id: str, runtime: RuntimeDep, principal: Reader
) -> list[StatementSummary]:
    ensure_visible(principal, contract_id)
    found = await store.list_statements(runtime.engine, contract_id)
    if not found:
        raise Problem(404, "Not found", f"no statements for {contract_id!r}")
    return [StatementSummary.model_validate(s) for s in found]


@router.get(
    "/contracts/{contract_id}/statements/{period}",
    response_model=None,
    responses=exports.OPENAPI_RESPONSES,
)
async def get_statement(
    contract_id: str,
    period: Period,
    request: Request,
    runtime: RuntimeDep,
    principal: Reader,
    format: Annotated[
        exports.Format | None, Query(description="overrides the Accept header")
    ] = None,
) -> Any:
    """The statement as JSON, CSV or a printable page (content negotiation)."""
    ensure_visible(principal, contract_id)
    found = await store.get_statement(runtime.engine, contract_id, period)
    if found is None:
        raise Problem(404, "Not found", f"no statement for {contract_id} {period}")
    disputes = await store.list_disputes(runtime.engine, contract_id, period)
    return exports.respond(request, {**found, "disputes": disputes}, format)


@router.get("/contracts/{contract_id}/balance", response_model=Balance)
async def get_balance(
    contract_id: str,
    runtime: RuntimeDep,
    principal: Reader,
    as_of: Annotated[AwareDatetime | None, Query(description="RFC 3339; default now")] = None,
) -> Balance:
    """Sums of the journal entries posted up to `as_of`."""
    ensure_visible(principal, contract_id)
    moment = as_of or datetime.now(UTC)
    entries = await store.list_entries(runtime.engine, contract_id, until=moment)
    statements = await store.list_statements(runtime.engine, contract_id)
    if not entries and not statements:
        raise Problem(404, "Not found", f"no contract {contract_id!r} with statements")
    currency = entries[0].currency if entries else statements[-1]["currency"]
    sums = {"billed": Decimal(0), "credits": Decimal(0), "adjustments": Decimal(0)}
    for entry in entries:
        kind = entry.kind
        bucket = (
            "billed" if kind == "base_fee" else "credits" if kind in CREDIT_KINDS else "adjustments"
        )
        sums[bucket] += entry.amount
    text = {k: money.format_money(v, currency) for k, v in sums.items()}
    net = money.format_money(sum(sums.values(), Decimal(0)), currency)
    return Balance(currency=currency, net=net, as_of=moment, entries=len(entries), **text)


def get_verifications(request: Request) -> Verifications:
    found: Verifications = request.app.state.verifications
    return found


VerificationsDep = Annotated[Verifications, Depends(get_verifications)]


class Verification(BaseModel):
    contract_id: str
    period: str
    verified: bool
    differences: list[dict[str, Any]]
    entries_checked: int
    events_on_bus: int


@router.get(
    "/contracts/{contract_id}/statements/{period}/verify",
    response_model=Verification,
    responses={
        409: {"description": "nothing final to verify: the period is still open"},
        429: {"description": "too many verifications running; see Retry-After"},
        503: {"description": "the bus or the database could not be read; see Retry-After"},
    },
)
async def verify_statement(
    contract_id: str,
    period: Period,
    runtime: RuntimeDep,
    principal: Reader,
    verifications: VerificationsDep,
) -> Verification:
    """Recompute the final statement from the raw events on the bus, check the chain and
    every adjustment's cause, and the entries this service serves against the bus. Runs in
    a process of its own; a verified result is kept until the contract's chain moves on."""
    ensure_visible(principal, contract_id)
    outcome = await verifications.verify(runtime.bus, runtime.engine, contract_id, period)
    if isinstance(outcome, Refused):
        raise Problem(outcome.status, outcome.title, outcome.detail, outcome.headers)
    return Verification(
        contract_id=contract_id,
        period=period,
        verified=not outcome.differences,
        differences=outcome.differences,
        entries_checked=outcome.entries_checked,
        events_on_bus=outcome.events_on_bus,
    )
