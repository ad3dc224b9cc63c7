"""The measurement batch an agent posts, and the events it becomes."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from services.ingest.bounds import MAX_BATCH, TooLarge, check_json_elements
from services.ingest.door import value_text
from shared import jsonutil
from shared.events import (
    AwareDatetime,
    ContractId,
    MeasurementRecorded,
    deterministic_event_id_text,
    utcnow,
)
from shared.settings import DEFAULT_MAX_CLOCK_SKEW_S, Settings


class MeasurementIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measurement_id: str | None = Field(default=None, min_length=1, max_length=200)
    contract_id: ContractId
    kpi: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    value: Decimal = Field(allow_inf_nan=False)
    """The decimal the agent's JSON number spells (`decode_batch` reads it exactly); a
    protocol's float64 becomes the shortest decimal that reads back as that float."""
    observed_at: AwareDatetime
    labels: dict[str, str] = Field(default_factory=dict, max_length=50)

    @field_validator("observed_at")
    @classmethod
    def _not_ahead_of_the_clock(cls, value: datetime, info: ValidationInfo) -> datetime:
        context = info.context or {}
        skew = float(context.get("max_clock_skew_s", DEFAULT_MAX_CLOCK_SKEW_S))
        latest = context.get("latest") or utcnow() + timedelta(seconds=skew)
        if value > latest:
            raise ValueError(f"observed_at lies more than {skew:g} s ahead of our clock")
        return value


def validation_context(settings: Settings) -> dict[str, Any]:
    """What `MeasurementIn` validation reads: the clock skew allowed and the latest
    `observed_at` it allows, from one reading of the clock for a whole request."""
    skew = settings.max_clock_skew_s
    return {"max_clock_skew_s": skew, "latest": utcnow() + timedelta(seconds=float(skew))}


class MeasurementBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measurements: list[MeasurementIn] = Field(min_length=1, max_length=MAX_BATCH)


class Accepted(BaseModel):
    accepted: int
    duplicates: int


_DECODER = msgspec.json.Decoder(float_hook=Decimal)


def decode_batch(body: bytes) -> Any:
    """The JSON body, numbers with a fraction or exponent read as the exact `Decimal` they
    spell; raises `TooLarge` past `MAX_BATCH` measurements (counted before anything is
    built for them) and `ValueError` for a body that is not JSON."""
    check_json_elements(body)
    try:
        decoded = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValueError(str(exc) or "JSON nested too deeply") from exc
    items = decoded.get("measurements") if isinstance(decoded, dict) else None
    if isinstance(items, list) and len(items) > MAX_BATCH:
        raise TooLarge(f"{len(items)} measurements; at most {MAX_BATCH} per request")
    return decoded


def from_float(value: float) -> Decimal:
    """The shortest decimal that reads back as `value` (what Prometheus and OTLP send)."""
    return Decimal(repr(value))


def event_id_of(item: MeasurementIn, batch: str | None = None, index: int = 0) -> str:
    """The event id: from the `measurement_id`, else (in a signed batch) from the batch's
    digest and the item's place, so that a replayed request counts nothing twice."""
    if item.measurement_id is not None:
        return deterministic_event_id_text(item.contract_id, item.measurement_id)
    if batch is not None:
        return deterministic_event_id_text(item.contract_id, f"batch:{batch}:{index}")
    return str(uuid.uuid4())


def event_json(
    item: MeasurementIn,
    event_id: str,
    source: str,
    recorded_at: datetime,
    value: str | None = None,
    signed: dict[str, Any] | None = None,
) -> bytes:
    """The `sla.measurement.recorded` envelope, built straight to JSON (this is the hot path;
    a unit test checks it parses back as an `Envelope`). `value` is `value_text(item.value)`,
    if the caller has it already; `signed` holds `batch`, `index` and `party` of a
    measurement that came in a signed request."""
    data = {
        "kpi": item.kpi,
        "value": orjson.Fragment(value_text(item.value) if value is None else value),
        "labels": item.labels,
        "measurement_id": item.measurement_id,
    }
    return jsonutil.dumps(
        {
            "event_id": event_id,
            "type": MeasurementRecorded.TYPE,
            "schema_version": 1,
            "contract_id": item.contract_id,
            "occurred_at": item.observed_at,
            "recorded_at": recorded_at,
            "source": source,
            "data": data if signed is None else data | signed,
        }
    )


def content_digest(item: MeasurementIn, value: str | None = None) -> str:
    """What a measurement says, in 32 hex digits: a `measurement_id` posted again with another
    digest is a conflict, with the same one a duplicate (1.0 and 1 are the same value).
    `value` is `value_text(item.value)`, if the caller has it already."""
    labels = jsonutil.dumps(sorted(item.labels.items())) if item.labels else b""
    text = value_text(item.value) if value is None else value
    said = f"{item.kpi}\x1f{text}\x1f{item.observed_at.isoformat()}\x1f"
    return hashlib.blake2b(said.encode() + labels, digest_size=16).hexdigest()


class UndecodablePayload(ValueError):
    """An agent's request that cannot be read at all (becomes a 4xx: never worth a retry)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


@dataclass
class Decoded:
    """What an agent protocol's request holds for slapay, before validation.

    `items` pairs a description of where each candidate came from (for error messages) with
    the `MeasurementIn` fields read from it; `ignored` counts what was not meant for slapay
    (series or data points that name no slapay KPI); `rejected` gives the reason for each data
    point that was meant for slapay but can never become a measurement (OTLP partial success)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ignored: int = 0
    rejected: list[str] = field(default_factory=list)


def label_digest(pairs: Iterable[tuple[str, str]]) -> str:
    """A stable digest of a label set: order-free, unambiguous, short enough for an id."""
    canonical = json.dumps(sorted(pairs), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
