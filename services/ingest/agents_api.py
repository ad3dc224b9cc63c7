"""HTTP edge for monitoring agents: Prometheus remote write and OTLP/HTTP metrics.

Both decode their protocol into `MeasurementIn` candidates and then take the same path as
`POST /v1/measurements`: the whole request is validated first (any invalid measurement → 400
naming it, nothing published), a contract the token does not list is 404, and the answer is
a success only once the bus acknowledged every new event (else 503 + Retry-After, which both
protocols retry). Duplicates of earlier requests are counted, never published twice.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from services.ingest import otlp, prometheus
from services.ingest.handlers import accept_batch
from services.ingest.measurements import (
    MAX_BATCH,
    Accepted,
    Decoded,
    MeasurementBatch,
    MeasurementIn,
    UndecodablePayload,
    validation_context,
)
from shared.auth import Principal
from shared.bus import BusUnavailable
from shared.runtime import Runtime, RuntimeDep
from shared.web import Problem, ensure_visible, require, validation_errors

router = APIRouter(tags=["agents"])
Writer = Annotated[Principal, Depends(require("agent", "admin"))]
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_REPORTED = 100
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
async def prometheus_write(request: Request, runtime: RuntimeDep, principal: Writer) -> Response:
    """Samples of series labelled `slapay_kpi` (and `slapay_contract`) become measurements."""
    body = await _read_body(request)
    try:
        write_request = prometheus.decode_write_request(
            body, request.headers.get("content-type"), request.headers.get("content-encoding")
        )
        decoded = prometheus.to_measurements(write_request)
    except UndecodablePayload as exc:
        raise Problem(exc.status, exc.title, exc.detail) from exc
    accepted = await accept_decoded(runtime, principal, decoded, "prometheus")
    headers = _counts(accepted, decoded)
    headers["X-Prometheus-Remote-Write-Version"] = REMOTE_WRITE_VERSION
    return Response(status_code=204, headers=headers)


@router.post(
    "/otlp/v1/metrics",
    response_class=Response,
    openapi_extra=_body_doc(otlp.PROTOBUF, otlp.JSON),
    summary="OTLP/HTTP metrics (protobuf or JSON ExportMetricsServiceRequest)",
)
async def otlp_metrics(request: Request, runtime: RuntimeDep, principal: Writer) -> Response:
    """Gauge and sum points naming a `slapay.kpi` become measurements; other kinds are refused."""
    body = await _read_body(request)
    content_type = request.headers.get("content-type")
    try:
        media = otlp.media_type(content_type)
        export = otlp.decode_request(body, content_type, request.headers.get("content-encoding"))
        decoded = otlp.to_measurements(export)
    except UndecodablePayload as exc:
        raise Problem(exc.status, exc.title, exc.detail) from exc
    accepted = await accept_decoded(runtime, principal, decoded, "otlp")
    headers = {**_counts(accepted, decoded), "X-Slapay-Rejected": str(len(decoded.rejected))}
    return Response(otlp.response_body(decoded, media), 200, headers, media_type=media)


async def accept_decoded(
    runtime: Runtime, principal: Principal, decoded: Decoded, protocol: str
) -> Accepted:
    """Validate every candidate, check the token reaches each contract, then publish."""
    metrics = runtime.telemetry.metrics
    metrics.count_measurements(protocol, rejected=len(decoded.rejected))
    try:
        items = validate(decoded.items, validation_context(runtime.settings))
    except Problem:
        metrics.count_measurements(protocol, rejected=len(decoded.items))
        raise
    for contract_id in sorted({item.contract_id for item in items}):
        ensure_visible(principal, contract_id)
    accepted, duplicates = 0, 0
    try:
        for start in range(0, len(items), MAX_BATCH):
            batch = MeasurementBatch(measurements=items[start : start + MAX_BATCH])
            result = await accept_batch(
                runtime.engine, runtime.bus, batch, f"agent:{principal.subject}"
            )
            accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
    except BusUnavailable as exc:
        raise Problem(503, "Bus unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    except OperationalError as exc:  # e.g. a locked or unreachable database: worth a retry
        raise Problem(
            503, "Database unavailable", type(exc.orig).__name__, headers={"Retry-After": "5"}
        ) from exc
    metrics.count_measurements(protocol, accepted, duplicates)
    return Accepted(accepted=accepted, duplicates=duplicates)


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
