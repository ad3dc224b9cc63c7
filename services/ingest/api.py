"""HTTP edge of ingest: measurements in, 202 only once the bus has them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.ingest.handlers import accept_batch
from services.ingest.measurements import Accepted, MeasurementBatch, validation_context
from shared import jsonutil
from shared.auth import Principal
from shared.bus import BusUnavailable
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible, inline_schema, require, validation_errors

router = APIRouter(prefix="/v1", tags=["measurements"])
Writer = Annotated[Principal, Depends(require("agent", "admin"))]


@router.post(
    "/measurements",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(MeasurementBatch)}},
        }
    },
)
async def post_measurements(
    request: Request, runtime: RuntimeDep, principal: Writer
) -> JSONResponse:
    """Validate the whole batch first; any bad item → 422 naming every bad index."""
    body = await request.body()
    metrics = runtime.telemetry.metrics
    try:
        batch = MeasurementBatch.model_validate_json(
            body, context=validation_context(runtime.settings)
        )
    except ValidationError as exc:
        metrics.count_measurements("json", rejected=_item_count(body))
        errors = validation_errors(exc.errors())
        if any(e["type"] == "json_invalid" for e in errors):
            raise Problem(400, "Malformed JSON", errors=errors) from exc
        bad = sorted(
            {e["loc"][1] for e in errors if len(e["loc"]) > 1 and e["loc"][0] == "measurements"}
        )
        raise Problem(
            422,
            "Invalid measurements",
            f"{len(bad)} invalid item(s); nothing was published",
            invalid_items=bad,
            errors=errors,
        ) from exc
    for contract_id in {m.contract_id for m in batch.measurements}:
        ensure_visible(principal, contract_id)
    try:
        accepted = await accept_batch(
            runtime.engine, runtime.bus, batch, f"agent:{principal.subject}"
        )
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    metrics.count_measurements("json", accepted.accepted, accepted.duplicates)
    return JSONResponse(accepted.model_dump(), status_code=202)


def _item_count(body: bytes) -> int:
    """How many measurements a refused body held (for the `rejected` metric)."""
    try:
        items = jsonutil.loads(body).get("measurements")
    except (ValueError, AttributeError):
        return 0
    return len(items) if isinstance(items, list) else 0
