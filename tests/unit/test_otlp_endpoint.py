"""`POST /otlp/v1/metrics` with a fake bus: the OTLP answers, and what is published."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.metrics import Meter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from shared.auth import issue_token
from shared.events import TOPIC_MEASUREMENTS, Envelope, deterministic_event_id
from tests.fakes import InMemoryBus
from tests.service.test_ingest import ingest
from tests.system import SECRET
from tests.unit.test_otlp import CONTRACT, TAGS, availability_gauge, mixed, sdk_request

PATH = "/otlp/v1/metrics"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def token(role: str = "agent", contracts: tuple[str, ...] = (CONTRACT,)) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, role, list(contracts))}"}


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


def published(bus: InMemoryBus) -> list[Envelope]:
    return [Envelope.from_json(record.value) for record in bus.topics[TOPIC_MEASUREMENTS]]


async def test_protobuf_gzip_points_are_published_once(tmp_path: Path, bus: InMemoryBus) -> None:
    body = gzip.compress(sdk_request(availability_gauge).SerializeToString())
    headers = {**token(), **PROTOBUF, "Content-Encoding": "gzip"}
    async with ingest(tmp_path, bus) as client:
        first = await client.post(PATH, content=body, headers=headers)
        retried = await client.post(PATH, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/x-protobuf"
    assert not ExportMetricsServiceResponse.FromString(first.content).HasField("partial_success")
    assert first.headers["x-slapay-accepted"] == "1"
    assert (retried.headers["x-slapay-accepted"], retried.headers["x-slapay-duplicates"]) == (
        "0",
        "1",
    )
    [event] = published(bus)
    data = event.payload().model_dump()
    assert (event.contract_id, data["kpi"], data["value"]) == (CONTRACT, "availability", 1.0)
    assert event.event_id == deterministic_event_id(CONTRACT, data["measurement_id"])


async def test_json_with_a_refused_histogram_is_a_partial_success(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = json_format.MessageToJson(sdk_request(mixed)).encode()
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=body, headers={**token(), **JSON})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert partial["rejectedDataPoints"] == "1"
    assert partial["errorMessage"].startswith("'latency' is of type histogram")
    assert response.headers["x-slapay-accepted"] == "2"
    assert response.headers["x-slapay-ignored"] == "2"
    assert response.headers["x-slapay-rejected"] == "1"
    assert sorted(e.payload().model_dump()["kpi"] for e in published(bus)) == [
        "availability",
        "resolved",
    ]


async def test_an_admin_writes_any_contract(tmp_path: Path, bus: InMemoryBus) -> None:
    def other(meter: Meter) -> None:
        meter.create_gauge("g").set(1, {**TAGS, "slapay.contract": "other-co"})

    body = sdk_request(other).SerializeToString()
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=body, headers={**token("admin", ()), **PROTOBUF})
    assert response.status_code == 200, response.text
    assert [e.contract_id for e in published(bus)] == ["other-co"]


async def test_the_bus_being_down_is_retryable(tmp_path: Path, bus: InMemoryBus) -> None:
    body = sdk_request(availability_gauge).SerializeToString()
    async with ingest(tmp_path, bus) as client:
        bus.down = True
        refused = await client.post(PATH, content=body, headers={**token(), **PROTOBUF})
        bus.down = False
        retried = await client.post(PATH, content=body, headers={**token(), **PROTOBUF})
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert retried.headers["x-slapay-accepted"] == "1"


def _gauge(**attributes: str) -> bytes:
    return sdk_request(lambda m: m.create_gauge("g").set(1, attributes)).SerializeToString()


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\x1f\x8b not really gzip", {**token(), **PROTOBUF, "Content-Encoding": "gzip"}, 400),
        (b"\xff\xff\xff", {**token(), **PROTOBUF}, 400),
        (b'{"resourceMetrics": {', {**token(), **JSON}, 400),
        (_gauge(**{"slapay.kpi": "availability"}), {**token(), **PROTOBUF}, 400),
        (_gauge(**{**TAGS, "slapay.kpi": "no spaces"}), {**token(), **PROTOBUF}, 400),
        (_gauge(**TAGS), {**token(), "Content-Type": "text/csv"}, 415),
        (_gauge(**TAGS), {**token("agent", ("someone-else",)), **PROTOBUF}, 404),
        (_gauge(**TAGS), {**token("customer"), **PROTOBUF}, 403),
        (_gauge(**TAGS), PROTOBUF, 401),
    ],
    ids=[
        "corrupt-gzip",
        "wrong-protobuf",
        "malformed-json",
        "missing-contract",
        "invalid-kpi",
        "content-type",
        "unlisted-contract",
        "customer-role",
        "no-token",
    ],
)
async def test_bad_requests_are_4xx_problems_and_publish_nothing(
    tmp_path: Path, bus: InMemoryBus, body: bytes, headers: dict[str, str], status: int
) -> None:
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert bus.topics[TOPIC_MEASUREMENTS] == []


async def test_an_invalid_point_spoils_the_whole_request(tmp_path: Path, bus: InMemoryBus) -> None:
    def record(meter: Meter) -> None:
        meter.create_gauge("good").set(1, TAGS)
        meter.create_gauge("bad").set(1, {**TAGS, "slapay.contract": "Not A Contract"})

    body = sdk_request(record).SerializeToString()
    async with ingest(tmp_path, bus) as client:
        response = await client.post(PATH, content=body, headers={**token(), **PROTOBUF})
    assert response.status_code == 400
    problem = response.json()
    assert [item.split("{")[0] for item in problem["invalid_items"]] == ["bad"]
    assert problem["errors"][0]["loc"] == ["contract_id"]
    assert bus.topics[TOPIC_MEASUREMENTS] == []
