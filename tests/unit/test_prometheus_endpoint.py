"""`POST /v1/prometheus/write` with a fake bus: what Prometheus is told, and what is published."""

from __future__ import annotations

import math
from pathlib import Path

import cramjam
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from services.ingest.measurements import MAX_BATCH
from services.ingest.prometheus_remote_pb2 import Label, Sample, TimeSeries, WriteRequest
from shared.auth import issue_token
from shared.events import TOPIC_MEASUREMENTS, Envelope, deterministic_event_id
from tests.fakes import InMemoryBus
from tests.service.test_ingest import ingest
from tests.system import SECRET

CONTRACT = "acme-2026"
PATH = "/v1/prometheus/write"
T0 = 1_790_000_000_000
PROTOBUF = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
SENT_BY_PROMETHEUS = {
    **PROTOBUF,
    "User-Agent": "Prometheus/2.42.0",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def token(role: str = "agent", contracts: tuple[str, ...] = (CONTRACT,)) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role, list(contracts))}"}


def series(kpi: str | None, values: list[float], contract: str | None = CONTRACT) -> TimeSeries:
    labels = {"__name__": "probe_success", "job": "blackbox"}
    if contract is not None:
        labels["slapay_contract"] = contract
    if kpi is not None:
        labels["slapay_kpi"] = kpi
    return TimeSeries(
        labels=[Label(name=k, value=v) for k, v in sorted(labels.items())],
        samples=[Sample(value=v, timestamp=T0 + 1000 * i) for i, v in enumerate(values)],
    )


def body(*items: TimeSeries) -> bytes:
    return bytes(cramjam.snappy.compress_raw(WriteRequest(timeseries=items).SerializeToString()))


def otlp_as_remote_write() -> bytes:
    """Another protobuf message, well-formed but not a `WriteRequest`."""
    otlp = ExportMetricsServiceRequest()
    attribute = otlp.resource_metrics.add().resource.attributes.add()
    attribute.key, attribute.value.string_value = "service.name", "shop"
    return bytes(cramjam.snappy.compress_raw(otlp.SerializeToString()))


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


def published(bus: InMemoryBus) -> list[Envelope]:
    return [Envelope.from_json(record.value) for record in bus.topics[TOPIC_MEASUREMENTS]]


async def test_labelled_samples_are_published_and_a_retry_counts_nothing_twice(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    request = body(series("availability", [1, 0, 1]), series(None, [1, 1], contract=None))
    headers = {**token(), **SENT_BY_PROMETHEUS}
    async with ingest(tmp_path, bus) as client:
        first = await client.post(PATH, content=request, headers=headers)
        retried = await client.post(PATH, content=request, headers=headers)
    assert first.status_code == 204, first.text
    assert first.content == b""
    assert first.headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert (first.headers["x-slapay-accepted"], first.headers["x-slapay-ignored"]) == ("3", "1")
    assert retried.status_code == 204
    assert (retried.headers["x-slapay-accepted"], retried.headers["x-slapay-duplicates"]) == (
        "0",
        "3",
    )
    events = published(bus)
    assert [e.payload().model_dump()["value"] for e in events] == [1.0, 0.0, 1.0]
    event = events[0]
    assert (event.contract_id, event.type) == (CONTRACT, "sla.measurement.recorded")
    assert event.occurred_at.timestamp() * 1000 == T0
    assert event.source.startswith("agent:")
    data = event.payload().model_dump()
    assert data["kpi"] == "availability"
    assert data["labels"] == {"__name__": "probe_success", "job": "blackbox"}
    assert event.event_id == deterministic_event_id(CONTRACT, data["measurement_id"])
    assert bus.topics[TOPIC_MEASUREMENTS][0].key == CONTRACT


async def test_an_admin_writes_any_contract_and_an_empty_request_is_fine(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    async with ingest(tmp_path, bus) as client:
        admin = await client.post(
            PATH,
            content=body(series("availability", [1], contract="other-co")),
            headers={**token("admin", ()), **PROTOBUF},
        )
        empty = await client.post(PATH, content=body(), headers={**token(), **PROTOBUF})
    assert admin.status_code == 204, admin.text
    assert empty.status_code == 204
    assert [e.contract_id for e in published(bus)] == ["other-co"]


async def test_a_full_request_is_published_whole_and_one_sample_more_is_refused(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    values = [1.0] * MAX_BATCH
    async with ingest(tmp_path, bus) as client:
        response = await client.post(
            PATH, content=body(series("availability", values)), headers={**token(), **PROTOBUF}
        )
        too_many = await client.post(
            PATH,
            content=body(series("availability", [*values, 1.0])),
            headers={**token(), **PROTOBUF},
        )
    assert response.status_code == 204, response.text
    assert response.headers["x-slapay-accepted"] == str(len(values))
    assert too_many.status_code == 413, too_many.text
    assert too_many.headers["content-type"] == "application/problem+json"
    assert len(bus.topics[TOPIC_MEASUREMENTS]) == len(values)


async def test_the_bus_being_down_is_retryable_and_acknowledges_nothing(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    request = body(series("availability", [1, 1]))
    async with ingest(tmp_path, bus) as client:
        bus.down = True
        refused = await client.post(PATH, content=request, headers={**token(), **PROTOBUF})
        bus.down = False
        retried = await client.post(PATH, content=request, headers={**token(), **PROTOBUF})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"] == "application/problem+json"
    assert retried.headers["x-slapay-accepted"] == "2"


@pytest.mark.parametrize(
    ("request_body", "headers", "status"),
    [
        (b"\x10not snappy at all", {**token(), **PROTOBUF}, 400),
        (otlp_as_remote_write(), {**token(), **PROTOBUF}, 400),
        (body(series("availability", [1], contract=None)), {**token(), **PROTOBUF}, 400),
        (body(series("availability", [1], contract="Not Valid")), {**token(), **PROTOBUF}, 400),
        (body(series("availability", [math.nan])), {**token(), **PROTOBUF}, 400),
        (body(series("availability ok", [1])), {**token(), **PROTOBUF}, 400),
        (body(series("availability", [1])), {**token(), "Content-Type": "text/plain"}, 415),
        (body(series("availability", [1])), {**token("agent", ("someone-else",)), **PROTOBUF}, 404),
        (body(series("availability", [1])), {**token("customer"), **PROTOBUF}, 403),
        (body(series("availability", [1])), PROTOBUF, 401),
    ],
    ids=[
        "corrupt-snappy",
        "wrong-protobuf",
        "missing-contract-label",
        "invalid-contract",
        "nan-value",
        "invalid-kpi",
        "wrong-content-type",
        "unlisted-contract",
        "customer-role",
        "no-token",
    ],
)
async def test_bad_requests_are_4xx_problems_and_publish_nothing(
    tmp_path: Path, bus: InMemoryBus, request_body: bytes, headers: dict[str, str], status: int
) -> None:
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=request_body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    assert bus.topics[TOPIC_MEASUREMENTS] == []


async def test_an_invalid_sample_names_its_series_and_spoils_the_whole_request(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    request = body(series("availability", [1, 1]), series("latency_ms", [1, math.inf]))
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=request, headers={**token(), **PROTOBUF})
    assert response.status_code == 400
    problem = response.json()
    assert problem["invalid_items"] == [
        'probe_success{job="blackbox",slapay_contract="acme-2026",slapay_kpi="latency_ms"}'
        f" @ {T0 + 1000}"
    ]
    assert problem["errors"][0]["loc"] == ["value"]
    assert "nothing was published" in problem["detail"]
    assert bus.topics[TOPIC_MEASUREMENTS] == []
