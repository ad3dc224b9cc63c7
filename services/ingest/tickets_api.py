"""HTTP edge of ingest for ticket events (docs/tickets.md): 202 only once the bus has them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.ingest.api import BookDep, Writer
from services.ingest.bounds import MAX_BATCH, TooLarge
from services.ingest.handlers import Refused
from services.ingest.measurements import Accepted, decode_batch, validation_context
from services.ingest.ticket_events import TicketBatch, accept_tickets
from shared.bus import BusUnavailable
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible, inline_schema, validation_errors

router = APIRouter(prefix="/v1", tags=["tickets"])
SHAPE = 'expected an object {"events": [...]} with 1 to 10,000 items; nothing was published'


@router.post(
    "/tickets/events",
    status_code=202,
    response_model=Accepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline_schema(TicketBatch)}},
        }
    },
)
async def post_ticket_events(
    request: Request, runtime: RuntimeDep, book: BookDep, principal: Writer
) -> JSONResponse:
    """Validate the whole batch first; any event that can never count → 422 naming it."""
    try:
        body = decode_batch(await request.body())
        items = body.get("events") if isinstance(body, dict) else None
        if isinstance(items, list) and len(items) > MAX_BATCH:
            raise TooLarge(f"{len(items)} events; at most {MAX_BATCH} per request")
        batch = TicketBatch.model_validate(body, context=validation_context(runtime.settings))
    except TooLarge as exc:
        raise Problem(413, "Content too large", str(exc)) from exc
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            errors = [{"loc": [], "msg": str(exc), "type": "json_invalid"}]
            raise Problem(400, "Malformed JSON", errors=errors) from exc
        errors = validation_errors(exc.errors())
        named = sorted(
            {int(e["loc"][1]) for e in errors if len(e["loc"]) > 1 and e["loc"][0] == "events"}
        )
        raise invalid(named, errors) from exc
    for contract_id in {e.contract_id for e in batch.events}:
        ensure_visible(principal, contract_id)
    try:
        accepted = await accept_tickets(runtime, book, batch.events, f"agent:{principal.subject}")
    except Refused as exc:
        raise invalid(
            sorted({r.index for r in exc.refusals}), [r.error("events") for r in exc.refusals]
        ) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    return JSONResponse(accepted.model_dump(), status_code=202)


def invalid(bad: list[int], errors: Sequence[Mapping[str, Any]]) -> Problem:
    """422 naming every bad event, or the shape the body should have."""
    return Problem(
        422,
        "Invalid ticket events",
        f"{len(bad)} invalid event(s); nothing was published" if bad else SHAPE,
        invalid_items=bad,
        errors=errors,
    )
