"""At most 10,000 measurements per request on the agents' protocols, counted while the
protobuf is walked (before any message object is made), and a walk that counts as the
real parser reads."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cramjam
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from services.ingest import bounds, otlp, prometheus
from services.ingest.prometheus_remote_pb2 import Label, Sample, TimeSeries, WriteRequest
from shared.auth import issue_token
from shared.events import TOPIC_MEASUREMENTS
from tests.fakes import InMemoryBus
from tests.service.test_ingest import ingest
from tests.system import SECRET

AGENT = {"Authorization": f"Bearer {issue_token(SECRET, 'agent', ['acme-2026'])}"}
REMOTE_WRITE = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
T0 = int(time.time() * 1000) - 3_600_000


def write_request(series: int, samples_each: int, kpi: str = "availability") -> WriteRequest:
    labels = {"__name__": "probe_success", "slapay_contract": "acme-2026", "slapay_kpi": kpi}
    return WriteRequest(
        timeseries=[
            TimeSeries(
                labels=[Label(name=k, value=v) for k, v in {**labels, "i": str(s)}.items()],
                samples=[
                    Sample(value=(i * 7919 % 1000 + s % 3) / 1000, timestamp=T0 + i)
                    for i in range(samples_each)
                ],
            )
            for s in range(series)
        ]
    )


def snappy(request: WriteRequest) -> bytes:
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def oversized_remote_write() -> bytes:
    """Like issue 19's body: 250,000 samples, more than 1 MiB once compressed."""
    return snappy(write_request(series=250, samples_each=1000))


def export(points: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "probe.success"
    for i in range(points):
        point = metric.gauge.data_points.add()
        point.as_double, point.time_unix_nano = 1.0, (T0 + i) * 1_000_000
        for key, value in (("slapay.contract", "acme-2026"), ("slapay.kpi", "availability")):
            attribute = point.attributes.add()
            attribute.key, attribute.value.string_value = key, value
    return request


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


async def test_an_oversized_remote_write_is_refused_quickly_and_publishes_nothing(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = oversized_remote_write()
    async with ingest(tmp_path, bus) as client:
        started = time.monotonic()
        response = await client.post(
            "/v1/prometheus/write", content=body, headers={**AGENT, **REMOTE_WRITE}
        )
        took = time.monotonic() - started
    assert 2**20 < len(body) < 2 * 2**20
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert took < 2.0
    assert bus.topics[TOPIC_MEASUREMENTS] == []


async def test_a_remote_write_announcing_too_much_is_refused_before_uncompressing(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = snappy(write_request(series=1, samples_each=1))
    async with ingest(tmp_path, bus, max_decoded_bytes=16) as client:
        response = await client.post(
            "/v1/prometheus/write", content=body, headers={**AGENT, **REMOTE_WRITE}
        )
    assert response.status_code == 413, response.text
    assert "uncompressed" in response.json()["detail"]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_an_otlp_export_of_10001_points_is_refused(
    tmp_path: Path, bus: InMemoryBus, encoding: str
) -> None:
    request = export(10_001)
    if encoding == "protobuf":
        kwargs: dict[str, Any] = {
            "content": request.SerializeToString(),
            "headers": {**AGENT, "Content-Type": "application/x-protobuf"},
        }
    else:
        kwargs = {
            "content": json_format.MessageToJson(request).encode(),
            "headers": {**AGENT, "Content-Type": "application/json"},
        }
    async with ingest(tmp_path, bus) as client:
        response = await client.post("/otlp/v1/metrics", **kwargs)
    assert response.status_code == 413, response.text
    assert bus.topics[TOPIC_MEASUREMENTS] == []


async def test_an_agent_protocol_names_what_can_never_count(
    tmp_path: Path, bus: InMemoryBus
) -> None:
    body = snappy(write_request(series=1, samples_each=2, kpi="availabilty"))
    async with ingest(tmp_path, bus) as client:
        response = await client.post(
            "/v1/prometheus/write", content=body, headers={**AGENT, **REMOTE_WRITE}
        )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert len(problem["invalid_items"]) == 2
    assert 'slapay_kpi="availabilty"' in problem["invalid_items"][0]
    assert [e["loc"] for e in problem["errors"]] == [
        ["measurements", 0, "kpi"],
        ["measurements", 1, "kpi"],
    ]
    assert bus.topics[TOPIC_MEASUREMENTS] == []


def test_the_walk_counts_what_the_parser_reads() -> None:
    request = write_request(series=7, samples_each=3)
    counts = bounds.count_protobuf(request.SerializeToString(), prometheus.WRITE_REQUEST, {})
    assert counts.points == 21
    assert counts.elements == 7 + 7 * 4 + 21  # series, labels, samples
    sdk = export(5)
    sdk.resource_metrics[0].resource.attributes.add().key = "service.name"
    counted = bounds.count_protobuf(sdk.SerializeToString(), otlp.EXPORT_REQUEST, otlp._SCHEMA)
    assert counted.points == 5


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (snappy(write_request(1, 1))[:-3], ValueError),
        (write_request(2, 6000).SerializeToString(), bounds.TooLarge),
        (b"\x0a\xff\xff\xff\xff\x0f", ValueError),
    ],
    ids=["not-protobuf", "too-many-samples", "truncated"],
)
def test_the_walk_refuses_what_it_cannot_bound(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        bounds.count_protobuf(raw, prometheus.WRITE_REQUEST, {})


def test_a_json_body_of_too_many_values_is_refused_before_decoding() -> None:
    bounds.check_json_elements(b'{"labels": "' + b"," * 2_000_000 + b'"}')  # inside a string
    with pytest.raises(bounds.TooLarge):
        bounds.check_json_elements(b"[" + b"1," * 1_000_000 + b"1]")


@pytest.mark.parametrize(
    ("request_", "bound"),
    [
        (WriteRequest(timeseries=[TimeSeries()] * 10_001), "series"),  # small: parsed in C
        (write_request(series=10, samples_each=1001), "samples"),
        (write_request(series=8_000, samples_each=2), "measurements"),  # over 1 MiB: walked
    ],
    ids=["10001-series", "10010-samples", "16000-samples-walked"],
)
def test_a_remote_write_past_a_bound_is_refused_on_either_path(
    request_: WriteRequest, bound: str
) -> None:
    with pytest.raises(bounds.TooLarge, match=bound):
        prometheus.decode_write_request(snappy(request_), *REMOTE_WRITE.values())
