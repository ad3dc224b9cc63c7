"""HTTP edge for monitoring agents: Prometheus remote write and OTLP/HTTP metrics.

Both decode their protocol into `MeasurementIn` candidates, at most `MAX_BATCH` (413 beyond,
counted while decoding), and then take the same path as `POST /v1/measurements`: the whole
request is validated first (a malformed measurement → 400 naming it, nothing published), a
contract the token does not list is 404, one that can never count by its contract's terms
(or that reuses a measurement id for other content) → 422 naming it, and the answer is a
success only once the bus acknowledged every new event (else 503 + Retry-After, which both
protocols retry). Duplicates of earlier requests are counted, never published twice.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from services.ingest import otlp, prometheus, signatures
from services.ingest.api import BookDep
from services.ingest.bounds import TooLarge
from services.ingest.contracts import ContractBook
from services.ingest.handlers import Refused, accept_batch
from services.ingest.measurements import (
    Accepted,
    Decoded,
    MeasurementIn,
    UndecodablePayload,
    validation_context,
)
from shared.auth import Principal
from shared.bus import BusUnavailable
from shared.runtime import Runtime, RuntimeDep
from shared.signed_requests import BadSignature
from shared.web import Problem, ensure_visible, require, validation_errors

router = APIRouter(tags=["agents"])
Writer = Annotated[Principal, Depends(require("agent", "admin"))]
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_REPORTED = 100
UNSIGNED_PROTOCOL = (
    " (remote write and OTLP requests are not signed: send this contract's measurements"
    " signed to POST /v1/measurements)"
)
REMOTE_WRITE_VERSION = "0.1.0"


def _body_doc(*media_types: str) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": dict.fromkeys(media_types, binary)}}


@router.post(
    "/v1/prometheus/write",
    status_code=204,
    response_class=Response,
    openapi_extra=_body_doc("application/x-protobuf"),
    summary="Prometheus remote write 1.0 (snappy-compressed protobuf WriteRequest)",
)
async def prometheus_write(
    request: Request, runtime: RuntimeDep, book: BookDep, principal: Writer
) -> Response:
    """Samples of series labelled `slapay_kpi` (and `slapay_contract`) become measurements."""
    body = await _read_body(request)
    try:
        write_request = prometheus.decode_write_request(
            body,
            request.headers.get("content-type"),
            request.headers.get("content-encoding"),
            runtime.settings.max_decoded_bytes,
        )
        decoded = prometheus.to_measurements(write_request)
    except UndecodablePayload as exc:
        raise Problem(exc.status, exc.title, exc.detail) from exc
    except TooLarge as exc:
        raise Problem(413, "Content too large", str(exc)) from exc
    accepted = await accept_decoded(runtime, book, principal, decoded, "prometheus")
    headers = _counts(accepted, decoded)
    headers["X-Prometheus-Remote-Write-Version"] = REMOTE_WRITE_VERSION
    return Response(status_code=204, headers=headers)


@router.post(
    "/otlp/v1/metrics",
    response_class=Response,
    openapi_extra=_body_doc(otlp.PROTOBUF, otlp.JSON),
    summary="OTLP/HTTP metrics (protobuf or JSON ExportMetricsServiceRequest)",
)
async def otlp_metrics(
    request: Request, runtime: RuntimeDep, book: BookDep, principal: Writer
) -> Response:
    """Gauge and sum points naming a `slapay.kpi` become measurements; other kinds are refused."""
    body = await _read_body(request)
    content_type = request.headers.get("content-type")
    try:
        media = otlp.media_type(content_type)
        export = otlp.decode_request(
            body,
            content_type,
            request.headers.get("content-encoding"),
            runtime.settings.max_decoded_bytes,
        )
        decoded = otlp.to_measurements(export)
    except UndecodablePayload as exc:
        raise Problem(exc.status, exc.title, exc.detail) from exc
    except TooLarge as exc:
        raise Problem(413, "Content too large", str(exc)) from exc
    accepted = await accept_decoded(runtime, book, principal, decoded, "otlp")
    headers = {**_counts(accepted, decoded), "X-Slapay-Rejected": str(len(decoded.rejected))}
    return Response(otlp.response_body(decoded, media), 200, headers, media_type=media)


async def accept_decoded(
    runtime: Runtime, book: ContractBook, principal: Principal, decoded: Decoded, protocol: str
) -> Accepted:
    """Validate every candidate, check the token reaches each contract and the door's rules,
    then publish."""
    metrics = runtime.telemetry.metrics
    metrics.count_measurements(protocol, rejected=len(decoded.rejected))
    try:
        items = validate(decoded.items, validation_context(runtime.settings))
    except Problem:
        metrics.count_measurements(protocol, rejected=len(decoded.items))
        raise
    for contract_id in sorted({item.contract_id for item in items}):
        ensure_visible(principal, contract_id)
    try:
        accepted = await accept_batch(runtime, book, items, f"agent:{principal.subject}")
    except Refused as exc:
        metrics.count_measurements(protocol, rejected=len(items))
        raise refused(decoded, exc) from exc
    except BadSignature as exc:  # this protocol's requests are never signed
        metrics.count_measurements(protocol, rejected=len(items))
        raise signatures.refused(exc, UNSIGNED_PROTOCOL) from exc
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    except OperationalError as exc:  # e.g. a locked or unreachable database: worth a retry
        raise Problem(
            503, "Database unavailable", type(exc.orig).__name__, headers={"Retry-After": "5"}
        ) from exc
    metrics.count_measurements(protocol, accepted.accepted, accepted.duplicates)
    return accepted


def refused(decoded: Decoded, exc: Refused) -> Problem:
    """422 naming each refused measurement as the protocol describes it; `loc` gives its
    index among the request's measurements."""
    where = [decoded.items[r.index][0] for r in exc.refusals]
    return Problem(
        422,
        "Measurements that can never count",
        f"{len(set(where))} refused measurement(s); nothing was published",
        invalid_items=list(dict.fromkeys(where))[:MAX_REPORTED],
        errors=[{"item": w, **r.error()} for w, r in zip(where, exc.refusals, strict=True)][
            :MAX_REPORTED
        ],
    )


def validate(
    items: list[tuple[str, dict[str, Any]]], context: dict[str, Any] | None = None
) -> list[MeasurementIn]:
    """Every candidate as a `MeasurementIn`, or 400 naming each invalid one (both protocols
    define 400 as "bad data, do not retry")."""
    valid: list[MeasurementIn] = []
    invalid: list[str] = []
    errors: list[dict[str, Any]] = []
    for where, fields in items:
        try:
            valid.append(MeasurementIn.model_validate(fields, context=context))
        except ValidationError as exc:
            invalid.append(where)
            errors.extend({"item": where, **e} for e in validation_errors(exc.errors()))
    if invalid:
        raise Problem(
            400,
            "Invalid measurements",
            f"{len(invalid)} invalid measurement(s); nothing was published",
            invalid_items=invalid[:MAX_REPORTED],
            errors=errors[:MAX_REPORTED],
        )
    return valid


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Problem(413, "Payload too large", f"at most {MAX_BODY_BYTES} bytes per request")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Problem(413, "Payload too large", f"at most {MAX_BODY_BYTES} bytes per request")
        chunks.append(chunk)
    return b"".join(chunks)


def _counts(accepted: Accepted, decoded: Decoded) -> dict[str, str]:
    return {
        "X-Slapay-Accepted": str(accepted.accepted),
        "X-Slapay-Duplicates": str(accepted.duplicates),
        "X-Slapay-Ignored": str(decoded.ignored),
    }
