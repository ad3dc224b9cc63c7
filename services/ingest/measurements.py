"""The measurement batch an agent posts, and the events it becomes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared import jsonutil
from shared.events import (
    AwareDatetime,
    ContractId,
    MeasurementRecorded,
    deterministic_event_id,
)

MAX_BATCH = 10_000


class MeasurementIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measurement_id: str | None = Field(default=None, min_length=1, max_length=200)
    contract_id: ContractId
    kpi: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    value: float = Field(allow_inf_nan=False)
    observed_at: AwareDatetime
    labels: dict[str, str] = Field(default_factory=dict, max_length=50)


class MeasurementBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    measurements: list[MeasurementIn] = Field(min_length=1, max_length=MAX_BATCH)


class Accepted(BaseModel):
    accepted: int
    duplicates: int


def event_id_of(item: MeasurementIn) -> str:
    if item.measurement_id is None:
        return str(uuid.uuid4())
    return str(deterministic_event_id(item.contract_id, item.measurement_id))


def event_json(item: MeasurementIn, event_id: str, source: str, recorded_at: datetime) -> bytes:
    """The `sla.measurement.recorded` envelope, built straight to JSON (this is the hot path;
    a unit test checks it parses back as an `Envelope`)."""
    return jsonutil.dumps(
        {
            "event_id": event_id,
            "type": MeasurementRecorded.TYPE,
            "schema_version": 1,
            "contract_id": item.contract_id,
            "occurred_at": item.observed_at,
            "recorded_at": recorded_at,
            "source": source,
            "data": {
                "kpi": item.kpi,
                "value": item.value,
                "labels": item.labels,
                "measurement_id": item.measurement_id,
            },
        }
    )
