"""HTTP edge of statements: what the parties pay and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from services.statements import store
from shared.auth import READER_ROLES, Principal
from shared.events import Period
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible, require

router = APIRouter(prefix="/v1", tags=["statements"])
Reader = Annotated[Principal, Depends(require(*READER_ROLES))]


class StatementSummary(BaseModel):
    period: str
    status: str
    total: str
    currency: str


@router.get("/contracts/{contract_id}/statements", response_model=list[StatementSummary])
async def list_statements(
    contract_id: str, runtime: RuntimeDep, principal: Reader
) -> list[StatementSummary]:
    ensure_visible(principal, contract_id)
    found = await store.list_statements(runtime.engine, contract_id)
    return [StatementSummary.model_validate(s, from_attributes=False) for s in found]


@router.get("/contracts/{contract_id}/statements/{period}")
async def get_statement(
    contract_id: str, period: Period, runtime: RuntimeDep, principal: Reader
) -> dict[str, Any]:
    ensure_visible(principal, contract_id)
    found = await store.get_statement(runtime.engine, contract_id, period)
    if found is None:
        raise Problem(404, "Not found", f"no statement for {contract_id} {period}")
    return found
