"""HTTP edge of ingest: measurements in, 202 only once the bus has them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.ingest import signatures
from services.ingest.bounds import TooLarge
from services.ingest.contracts import ContractBook
from services.ingest.handlers import Refused, accept_batch
from services.ingest.measurements import (
    Accepted,
    MeasurementBatch,
    decode_batch,
    validation_context,
)
from shared.auth import Principal
from shared.bus import BusUnavailable
from shared.runtime import RuntimeDep
from shared.signed_requests import BadSignature
from shared.web import Problem, ensure_visible, inline_schema, require, validation_errors

router = APIRouter(prefix="/v1", tags=["measurements"])
SHAPE = 'expected an object {"measurements": [...]} with 1 to 10,000 items; nothing was published'
Writer = Annotated[Principal, Depends(require("agent", "admin"))]


def get_book(request: Request) -> ContractBook:
    book: ContractBook = request.app.state.contracts
    return book


BookDep = Annotated[ContractBook, Depends(get_book)]


@router.post(
    "/measurements",
    status_code=202,
    response_model=Accepted,
    responses={
        401: {
            "description": "no valid token; or a contract's terms require an RFC 9421 signature"
            " (ed25519 over @path and content-digest) by a key they list, and the request"
            " carries none that verifies (see Accept-Signature); nothing was published"
        },
        413: {"description": "too many measurements, or a signed request too large to publish"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(MeasurementBatch)}},
        }
    },
)
async def post_measurements(
    request: Request, runtime: RuntimeDep, book: BookDep, principal: Writer
) -> JSONResponse:
    """Validate the whole batch first; any bad item → 422 naming every bad index. A request
    may be signed (headers `Signature`, `Signature-Input`, `Content-Digest`); contracts whose
    terms require it take only signed ones."""
    metrics = runtime.telemetry.metrics
    raw = await request.body()
    try:
        body = decode_batch(raw)
        batch = MeasurementBatch.model_validate(body, context=validation_context(runtime.settings))
    except TooLarge as exc:
        raise Problem(413, "Content too large", str(exc)) from exc
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            errors = [{"loc": [], "msg": str(exc), "type": "json_invalid"}]
            raise Problem(400, "Malformed JSON", errors=errors) from exc
        metrics.count_measurements("json", rejected=_item_count(body))
        errors = validation_errors(exc.errors())
        named: list[int] = sorted(
            {
                int(e["loc"][1])
                for e in errors
                if len(e["loc"]) > 1 and e["loc"][0] == "measurements"
            }
        )
        raise invalid(named, errors) from exc
    contract_ids = {m.contract_id for m in batch.measurements}
    for contract_id in contract_ids:
        ensure_visible(principal, contract_id)
    try:
        signed = signatures.signed_request(request, raw)
        source = f"agent:{principal.subject}"
        accepted = await accept_batch(runtime, book, batch.measurements, source, signed)
    except BadSignature as exc:
        metrics.count_measurements("json", rejected=len(batch.measurements))
        raise signatures.refused(exc) from exc
    except TooLarge as exc:
        raise Problem(413, "Content too large", str(exc)) from exc
    except Refused as exc:
        metrics.count_measurements("json", rejected=len(batch.measurements))
        refused = sorted({r.index for r in exc.refusals})
        raise invalid(refused, [r.error() for r in exc.refusals]) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    metrics.count_measurements("json", accepted.accepted, accepted.duplicates)
    return JSONResponse(accepted.model_dump(), status_code=202)


def invalid(bad: list[int], errors: list[dict[str, Any]]) -> Problem:
    """422 naming every bad item, or (no item to name: a bare list, no `measurements`) the
    shape the body should have."""
    return Problem(
        422,
        "Invalid measurements",
        f"{len(bad)} invalid item(s); nothing was published" if bad else SHAPE,
        invalid_items=bad,
        errors=errors,
    )


def _item_count(body: Any) -> int:
    """How many measurements a refused body held (for the `rejected` metric)."""
    items = body.get("measurements") if isinstance(body, dict) else None
    return len(items) if isinstance(items, list) else 0
