"""HTTP edge of period closes and disputes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.ledger import journal_store
from services.ledger.book import Book, open_book
from services.ledger.domain import periods
from shared import money
from shared.auth import Principal
from shared.bus import BusUnavailable
from shared.events import (
    DisputeOpened,
    DisputeResolved,
    Envelope,
    Period,
    PeriodCloseRequested,
    make_event,
)
from shared.publishing import publish_events
from shared.runtime import Runtime, RuntimeDep
from shared.web import Problem, ensure_visible, require

router = APIRouter(prefix="/v1", tags=["periods and disputes"])
Closer = Annotated[Principal, Depends(require("admin", "provider"))]
Party = Annotated[Principal, Depends(require("customer", "provider"))]
Admin = Annotated[Principal, Depends(require("admin"))]


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


async def _book(runtime: Runtime, principal: Principal, contract_id: str) -> Book:
    ensure_visible(principal, contract_id)
    async with runtime.engine.connect() as conn:
        book = await open_book(conn, contract_id)
    if not book.versions:
        raise Problem(404, "Not found", f"no contract {contract_id!r}")
    return book


async def _publish(runtime: Runtime, events: list[Envelope]) -> None:
    try:
        await publish_events(runtime.bus, events)
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc


@router.post("/contracts/{contract_id}/periods/{period}/close", status_code=202)
async def close_period(
    contract_id: str, period: Period, runtime: RuntimeDep, principal: Closer
) -> JSONResponse:
    book = await _book(runtime, principal, contract_id)
    if period in book.closed:
        raise Problem(409, "Period already closed", f"{contract_id} {period} is final")
    if book.terms_for(period) is None:
        raise Problem(422, "No terms in force", f"no terms of {contract_id} apply to {period}")
    if not periods.has_ended(period, book.timezone, datetime.now(UTC)):
        raise Problem(422, "Period has not ended", f"{period} is still running")
    request = PeriodCloseRequested(
        period=period, requested_by=f"{principal.role}:{principal.subject}"
    )
    await _publish(runtime, [make_event(request, contract_id=contract_id, source="ledger-api")])
    return JSONResponse({"contract_id": contract_id, "period": period, "status": "closing"}, 202)


@router.post("/contracts/{contract_id}/disputes", status_code=201, response_model=DisputeCreated)
async def open_dispute(
    contract_id: str, body: DisputeIn, runtime: RuntimeDep, principal: Party
) -> DisputeCreated:
    await _book(runtime, principal, contract_id)  # visible to the caller, and exists
    async with runtime.engine.connect() as conn:
        final = await journal_store.final_statement(conn, contract_id, body.period)
    if final is None:
        raise Problem(
            409, "No final statement", f"{body.period} is not closed; dispute a final statement"
        )
    if body.line_id not in {line["line_id"] for line in final["lines"]}:
        raise Problem(
            409,
            "No such line",
            f"the final statement of {body.period} has no line {body.line_id!r}",
        )
    dispute_id = str(uuid.uuid4())
    opened = DisputeOpened(
        dispute_id=dispute_id,
        period=body.period,
        line_id=body.line_id,
        reason=body.reason,
        evidence_event_ids=body.evidence_event_ids,
        opened_by=f"{principal.role}:{principal.subject}",
    )
    event = make_event(opened, contract_id=contract_id, source="ledger-api")
    await _publish(runtime, [event])
    async with runtime.engine.begin() as conn:  # read-your-write; the fold applies it idempotently
        await journal_store.put_dispute(
            conn,
            {
                **opened.model_dump(mode="json"),
                "contract_id": contract_id,
                "status": "open",
                "opened_at": event.recorded_at.isoformat(),
            },
        )
    return DisputeCreated(dispute_id=dispute_id)


@router.post("/contracts/{contract_id}/disputes/{dispute_id}/resolve", status_code=202)
async def resolve_dispute(
    contract_id: str, dispute_id: str, body: ResolutionIn, runtime: RuntimeDep, principal: Admin
) -> JSONResponse:
    book = await _book(runtime, principal, contract_id)
    async with runtime.engine.connect() as conn:
        dispute = await journal_store.dispute(conn, dispute_id)
    if dispute is None or dispute["contract_id"] != contract_id:
        raise Problem(404, "Not found", f"no dispute {dispute_id!r}")
    if dispute["status"] != "open":
        raise Problem(409, "Dispute already resolved", f"it was {dispute['status']}")
    amount = _amount(body, book.versions[-1].currency)
    resolved = DisputeResolved(
        dispute_id=dispute_id, decision=body.decision, amount=amount, note=body.note
    )
    await _publish(runtime, [make_event(resolved, contract_id=contract_id, source="ledger-api")])
    return JSONResponse({"dispute_id": dispute_id, "status": "resolving"}, 202)


def _amount(body: ResolutionIn, currency: str) -> Decimal | None:
    if body.decision == "rejected" or body.amount is None:
        if body.decision == "accepted":
            raise Problem(
                422,
                "Amount required",
                "an accepted dispute needs the adjustment amount",
                errors=[{"loc": ["amount"], "msg": "required when accepted"}],
            )
        return None
    try:
        amount = Decimal(body.amount)
    except InvalidOperation as exc:
        raise Problem(
            422, "Invalid amount", errors=[{"loc": ["amount"], "msg": "not a decimal"}]
        ) from exc
    if (
        not amount.is_finite()
        or not money.fits_minor_unit(amount, currency)
        or abs(amount) >= 10**15
    ):
        raise Problem(
            422,
            "Invalid amount",
            f"not an amount in {currency}",
            errors=[{"loc": ["amount"], "msg": f"must be a finite {currency} amount"}],
        )
    return amount


@router.get("/contracts/{contract_id}/disputes")
async def list_disputes(
    contract_id: str,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("admin", "customer", "provider", "auditor"))],
) -> list[dict[str, object]]:
    await _book(runtime, principal, contract_id)
    async with runtime.engine.connect() as conn:
        return await journal_store.contract_disputes(conn, contract_id)
