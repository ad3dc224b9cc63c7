"""OTLP metrics decoding and the attribute mapping, on requests the OpenTelemetry SDK encodes."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.metrics import Meter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from services.ingest.measurements import Decoded, UndecodablePayload
from services.ingest.otlp import JSON, PROTOBUF, decode_request, response_body, to_measurements

CONTRACT = "acme-2026"
TAGS = {"slapay.contract": CONTRACT, "slapay.kpi": "availability"}


def sdk_request(
    record: Callable[[Meter], None], resource: dict[str, Any] | None = None
) -> ExportMetricsServiceRequest:
    """What the SDK's OTLP exporter would send after `record` ran."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "probe", **(resource or {})}),
    )
    record(provider.get_meter("slapay.tests"))
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    return encode_metrics(data)


def availability_gauge(meter: Meter) -> None:
    meter.create_gauge("probe.success").set(1, TAGS)


def mixed(meter: Meter) -> None:
    meter.create_gauge("probe.success").set(0.5, {**TAGS, "region": "eu"})
    meter.create_counter("tickets.resolved").add(3, {**TAGS, "slapay.kpi": "resolved"})
    meter.create_counter("http.requests").add(7, {"route": "/"})
    meter.create_histogram("latency").record(120, {**TAGS, "slapay.kpi": "latency_ms"})
    meter.create_histogram("untagged.latency").record(5)


def test_gauges_and_sums_naming_a_kpi_become_measurements() -> None:
    decoded = to_measurements(sdk_request(mixed))
    assert decoded.ignored == 2  # the untagged counter and histogram
    assert [(f["kpi"], f["value"]) for _, f in decoded.items] == [
        ("availability", 0.5),
        ("resolved", 3.0),
    ]
    where, gauge = decoded.items[0]
    assert gauge["contract_id"] == CONTRACT
    labels = {"otel.metric": "probe.success", "service.name": "probe", "region": "eu"}
    assert labels.items() <= gauge["labels"].items()
    assert set(gauge["labels"]) - set(labels) == {"service.instance.id"}  # the SDK's own
    assert abs(gauge["observed_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert gauge["measurement_id"].startswith("otlp:")
    assert where.startswith("probe.success{")


def test_tagged_histograms_are_refused_with_a_reason() -> None:
    [reason] = to_measurements(sdk_request(mixed)).rejected
    assert reason.startswith("'latency' is of type histogram: slapay takes gauge and sum")


def test_summaries_and_exponential_histograms_are_refused_too() -> None:
    request = ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add()
    for kind in ("summary", "exponential_histogram"):
        metric = scope.metrics.add(name=kind)
        point = getattr(metric, kind).data_points.add(time_unix_nano=1)
        for key, value in TAGS.items():
            point.attributes.add(key=key).value.string_value = value
    rejected = to_measurements(request).rejected
    assert rejected[0].startswith("'summary' is of type summary: ")
    assert rejected[1].startswith("'exponential_histogram' is of type exponential histogram: ")


def test_the_contract_may_sit_on_the_resource() -> None:
    def record(meter: Meter) -> None:
        meter.create_gauge("probe.success").set(1, {"slapay.kpi": "availability"})
        meter.create_gauge("process.cpu").set(0.3)

    decoded = to_measurements(sdk_request(record, {"slapay.contract": CONTRACT}))
    [(_, fields)] = decoded.items
    assert (fields["contract_id"], fields["kpi"], decoded.ignored) == (CONTRACT, "availability", 1)
    assert "slapay.contract" not in fields["labels"]


def test_a_kpi_without_a_contract_is_left_for_the_validation() -> None:
    decoded = to_measurements(
        sdk_request(lambda m: m.create_gauge("g").set(1, {"slapay.kpi": "availability"}))
    )
    assert "contract_id" not in decoded.items[0][1]


def test_the_measurement_id_is_the_series_and_the_time() -> None:
    request = sdk_request(availability_gauge)
    first = to_measurements(request).items[0][1]["measurement_id"]
    assert to_measurements(request).items[0][1]["measurement_id"] == first
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    point.time_unix_nano += 1
    assert to_measurements(request).items[0][1]["measurement_id"] != first
    other = sdk_request(availability_gauge, {"service.instance.id": "probe-2"})
    other.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].time_unix_nano = (
        point.time_unix_nano - 1
    )
    assert to_measurements(other).items[0][1]["measurement_id"] != first


def test_points_without_a_value_or_time() -> None:
    request = sdk_request(availability_gauge)
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
    point.ClearField("as_double")
    point.ClearField("as_int")
    assert "value" not in to_measurements(request).items[0][1]
    point.flags = 1  # no recorded value: nothing to measure
    assert to_measurements(request).items == []
    point.flags, point.as_int, point.time_unix_nano = 0, 1, 0
    assert "observed_at" not in to_measurements(request).items[0][1]


@pytest.mark.parametrize("encoding", [None, "gzip", "deflate"])
@pytest.mark.parametrize("media", [PROTOBUF, JSON])
def test_both_encodings_with_or_without_compression(media: str, encoding: str | None) -> None:
    request = sdk_request(mixed)
    raw = (
        request.SerializeToString()
        if media == PROTOBUF
        else json_format.MessageToJson(request).encode()
    )
    body = {None: raw, "gzip": gzip.compress(raw), "deflate": zlib.compress(raw)}[encoding]
    decoded = decode_request(body, f"{media}; charset=utf-8", encoding)
    assert decoded == request


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status"),
    [
        (b"{}", "text/plain", None, 415),
        (b"{}", JSON, "zstd", 415),
        (b"not gzip", PROTOBUF, "gzip", 400),
        (gzip.compress(b"\x0a\x02\x0a\x00")[:-12], PROTOBUF, "gzip", 400),
        (gzip.compress(b"\x00" * (64 * 1024 * 1024 + 1)), PROTOBUF, "gzip", 413),
        (b"\x0a\x10\x0a\x0e\x0a\x08__name__\x12\x02up", PROTOBUF, None, 400),
        (b"\xff\xff\xff", PROTOBUF, None, 400),
        (b'{"resourceMetrics": [', JSON, None, 400),
        (b'{"resourceMetrics": 5}', JSON, None, 400),
        (b"\xff\xfe", JSON, None, 400),
    ],
    ids=[
        "content-type",
        "zstd",
        "corrupt-gzip",
        "truncated-gzip",
        "gzip-bomb",
        "remote-write-as-otlp",
        "garbage-protobuf",
        "truncated-json",
        "wrong-json-shape",
        "not-utf8-json",
    ],
)
def test_undecodable_requests(
    body: bytes, content_type: str, encoding: str | None, status: int
) -> None:
    with pytest.raises(UndecodablePayload) as caught:
        decode_request(body, content_type, encoding)
    assert caught.value.status == status


def test_the_response_reports_refused_points_only() -> None:
    accepted = ExportMetricsServiceResponse.FromString(response_body(Decoded(), PROTOBUF))
    assert not accepted.HasField("partial_success")
    assert response_body(Decoded(), JSON) == b"{}"
    refused = Decoded(rejected=["'a' is a histogram", "'a' is a histogram", "'b' is a summary"])
    parsed = json_format.Parse(response_body(refused, JSON), ExportMetricsServiceResponse())
    assert parsed.partial_success.rejected_data_points == 3
    assert parsed.partial_success.error_message == "'a' is a histogram; 'b' is a summary"
