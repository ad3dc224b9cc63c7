"""HTTP edge of reviews: submit, import, summarise, erase. Routes validate, call one
handler, and map its errors to problem+json."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.reviews import crypto, handlers, queries, ratelimit
from services.reviews.config import ReviewsConfig, get_config
from services.reviews.csv_import import InvalidCsv, MalformedCsv
from services.reviews.models import (
    Imported,
    Pseudonym,
    PseudonymFound,
    PseudonymRequest,
    Released,
    ReviewIn,
    ReviewSummary,
    Submitted,
)
from shared.auth import READER_ROLES, Principal
from shared.bus import BusUnavailable
from shared.events import PERIOD_PATTERN, utcnow
from shared.runtime import RuntimeDep
from shared.web import Problem, ensure_visible, require

router = APIRouter(prefix="/v1", tags=["reviews"])
Config = Annotated[ReviewsConfig, Depends(get_config)]
PARTIES = frozenset({"customer", "provider"})
CSV_TYPES = frozenset(
    {"text/csv", "text/plain", "application/csv", "application/vnd.ms-excel", "text/x-csv"}
)


@dataclass(frozen=True)
class Caller:
    principal: Principal
    bucket: str  # keyed hash of the token id: its rate-limit bucket and its submitter mark


def rate_limited(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """Admit `roles`, then count the request against its token's limits (429 past them)."""

    admitted = Depends(require(*roles))  # a default: the closure is out of the annotations' reach

    async def dependency(
        runtime: RuntimeDep, config: Config, principal: Principal = admitted
    ) -> Caller:
        bucket = crypto.fingerprint(config.pepper, "token", principal.token_id)
        wait = await ratelimit.hit(runtime.engine, bucket, config.limits, utcnow())
        if wait is not None:
            raise Problem(
                429, "Too many requests", f"retry in {wait} s", headers={"Retry-After": str(wait)}
            )
        return Caller(principal, bucket)

    return dependency


Reader = Annotated[Principal, Depends(require(*READER_ROLES))]
Admin = Annotated[Principal, Depends(require("admin"))]
# Reviews come from the customer's side: a provider token may neither submit nor import
# them (docs/privacy.md, "Who may do what with reviews").
CustomerSide = Annotated[Caller, Depends(rate_limited("customer", "admin"))]


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    try:
        yield
    except handlers.UnknownContract as exc:
        raise Problem(404, "Not found", f"no contract {exc}") from exc
    except handlers.UnknownReviewer as exc:
        raise Problem(404, "Not found", "no reviewer with that pseudonym") from exc
    except handlers.FutureReview as exc:
        raise Problem(
            422, "Invalid request", str(exc), errors=[{"loc": ["body", "occurred_at"]}]
        ) from exc
    except handlers.UncountableDate as exc:
        raise Problem(
            422,
            "Invalid request",
            f"occurred_at {exc}",
            errors=[{"loc": ["body", "occurred_at"], "msg": str(exc)}],
        ) from exc
    except handlers.TooManyReviewers as exc:
        raise Problem(
            422, "Too many reviewers", str(exc), errors=[{"loc": ["body", "reviewer"]}]
        ) from exc
    except handlers.NothingHeld as exc:
        raise Problem(
            409, "Nothing held", f"no review of {exc} is flagged as a burst: nothing to release"
        ) from exc
    except MalformedCsv as exc:
        raise Problem(400, "Malformed CSV", str(exc)) from exc
    except InvalidCsv as exc:
        raise Problem(
            422,
            "Invalid CSV",
            f"{len(exc.problems)} problem(s); nothing was imported",
            invalid_rows=[p["row"] for p in exc.problems],
            problems=exc.problems,
        ) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc


@router.post("/reviews", status_code=202, response_model=Submitted)
async def post_review(
    review: ReviewIn,
    runtime: RuntimeDep,
    config: Config,
    caller: CustomerSide,
) -> JSONResponse:
    """One review; the same reviewer's later review in the same period replaces it."""
    ensure_visible(caller.principal, review.contract_id)
    with domain_errors():
        submitted = await handlers.submit(runtime, config, review, caller.bucket)
    runtime.telemetry.metrics.reviews.add(1, {"via": "submitted"})
    return JSONResponse(submitted.model_dump(), status_code=202)


@router.post(
    "/contracts/{contract_id}/reviews:import",
    status_code=202,
    response_model=Imported,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_reviews(
    contract_id: str,
    request: Request,
    runtime: RuntimeDep,
    config: Config,
    caller: CustomerSide,
) -> JSONResponse:
    """A survey tool's CSV export: every row valid, or 422 listing each bad row."""
    ensure_visible(caller.principal, contract_id)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise Problem(415, "Unsupported media type", "send the CSV file as text/csv")
    body = await _capped_body(request, config.import_max_bytes)
    with domain_errors():
        imported = await handlers.import_csv(runtime, config, contract_id, body, caller.bucket)
    runtime.telemetry.metrics.reviews.add(imported.imported, {"via": "imported"})
    return JSONResponse(imported.model_dump(), status_code=202)


@router.get("/contracts/{contract_id}/reviews", response_model=ReviewSummary)
async def get_summary(
    contract_id: str,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description="YYYY-MM")],
    runtime: RuntimeDep,
    config: Config,
    principal: Reader,
) -> ReviewSummary:
    """Ratings and dimensions of a period; never personal data."""
    ensure_visible(principal, contract_id)
    party = principal.role in PARTIES
    with domain_errors():
        return await queries.period_summary(runtime, config, contract_id, period, party)


@router.post(
    "/contracts/{contract_id}/reviews/{period}/release", status_code=202, response_model=Released
)
async def release_review_line(
    contract_id: str,
    period: Annotated[str, Path(pattern=PERIOD_PATTERN, description="YYYY-MM")],
    runtime: RuntimeDep,
    admin: Admin,
) -> JSONResponse:
    """Release the review line of a period held for a burst of reviews; the ledger pays it
    (an adjustment if the period is closed). Repeating it publishes the same event."""
    ensure_visible(admin, contract_id)
    with domain_errors():
        released = await handlers.release(runtime, contract_id, period, admin.subject)
    return JSONResponse(released.model_dump(), status_code=202)


@router.delete("/reviewers/{reviewer_pseudonym}", status_code=204, response_class=Response)
async def erase_reviewer(
    reviewer_pseudonym: Annotated[Pseudonym, Path()], runtime: RuntimeDep, _: Admin
) -> Response:
    """Destroy the reviewer's key: their comments become unreadable everywhere, for good;
    their ratings still count."""
    with domain_errors():
        await handlers.erase(runtime, reviewer_pseudonym)
    return Response(status_code=204)


@router.post("/reviewers:pseudonym", response_model=PseudonymFound)
async def find_pseudonym(
    request: PseudonymRequest, runtime: RuntimeDep, config: Config, _: Admin
) -> PseudonymFound:
    """For a data subject's erasure request: the pseudonym their id has in a contract
    (404 if this service holds nothing of it). Nothing of the request is kept."""
    found = await queries.find_pseudonym(runtime, config, request.contract_id, request.reviewer)
    if found is None:
        raise Problem(404, "Not found", "no reviews of that reviewer in that contract")
    return found


async def _capped_body(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Content too large", f"at most {limit} bytes per import")
        chunks.append(chunk)
    return b"".join(chunks)
