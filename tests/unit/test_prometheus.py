"""Prometheus remote write decoding and the label mapping (pure, no app)."""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime

import cramjam
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from services.ingest.measurements import UndecodablePayload
from services.ingest.prometheus import (
    STALE_NAN,
    decode_write_request,
    describe,
    to_measurements,
)
from services.ingest.prometheus_remote_pb2 import Label, Sample, TimeSeries, WriteRequest

HEADERS = ("application/x-protobuf", "snappy")
T0 = 1_790_000_000_000  # ms since the epoch
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN))[0]


def series(samples: list[tuple[float, int]], **labels: str) -> TimeSeries:
    return TimeSeries(
        labels=[Label(name=k, value=v) for k, v in sorted(labels.items())],
        samples=[Sample(value=v, timestamp=t) for v, t in samples],
    )


def probe(value: float = 1.0, timestamp: int = T0, **extra: str) -> TimeSeries:
    labels = {
        "__name__": "probe_success",
        "instance": "https://shop.example/health",
        "slapay_contract": "acme-2026",
        "slapay_kpi": "availability",
        **extra,
    }
    return series([(value, timestamp)], **labels)


def snappy(message: WriteRequest) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def test_round_trip_through_snappy_and_protobuf() -> None:
    request = WriteRequest(timeseries=[probe(), probe(0.0, T0 + 1000)])
    assert decode_write_request(snappy(request), *HEADERS) == request
    with_proto = "application/x-protobuf;proto=prometheus.WriteRequest"
    assert decode_write_request(snappy(request), with_proto, "Snappy") == request


def test_each_sample_of_a_labelled_series_is_a_measurement() -> None:
    request = WriteRequest(
        timeseries=[
            series(
                [(1.0, T0), (0.0, T0 + 1000)],
                __name__="probe_success",
                job="blackbox",
                slapay_contract="acme-2026",
                slapay_kpi="availability",
            ),
            series([(1.0, T0)], __name__="up", job="blackbox"),
            series([(0.2, T0)], __name__="probe_duration_seconds"),
        ]
    )
    decoded = to_measurements(request)
    assert decoded.ignored == 2
    assert decoded.rejected == []
    assert [fields["value"] for _, fields in decoded.items] == [1.0, 0.0]
    where, first = decoded.items[0]
    assert where == (
        'probe_success{job="blackbox",slapay_contract="acme-2026",slapay_kpi="availability"}'
        " @ 1790000000000"
    )
    assert first["contract_id"] == "acme-2026"
    assert first["kpi"] == "availability"
    assert first["observed_at"] == datetime.fromtimestamp(T0 / 1000, UTC)
    assert first["labels"] == {"__name__": "probe_success", "job": "blackbox"}
    assert first["measurement_id"].startswith("prom:")
    assert first["measurement_id"].endswith(f":{T0}")


def test_the_measurement_id_follows_the_labels_and_the_timestamp() -> None:
    def measurement_id(item: TimeSeries) -> str:
        return str(to_measurements(WriteRequest(timeseries=[item])).items[0][1]["measurement_id"])

    same = measurement_id(probe())
    assert measurement_id(probe()) == same  # a retried request derives the same id
    reordered = TimeSeries(labels=list(reversed(probe().labels)), samples=probe().samples)
    assert measurement_id(reordered) == same
    assert measurement_id(probe(timestamp=T0 + 1)) != same
    assert measurement_id(probe(instance="https://other.example/health")) != same
    assert measurement_id(probe(value=0.0)) == same  # the value is not part of the identity


def test_a_contract_label_alone_marks_nothing() -> None:
    target_wide = series([(1.0, T0)], __name__="probe_http_ssl", slapay_contract="acme-2026")
    decoded = to_measurements(WriteRequest(timeseries=[target_wide]))
    assert (decoded.items, decoded.ignored) == ([], 1)


def test_a_kpi_without_a_contract_is_a_candidate_the_validation_refuses() -> None:
    orphan = series([(1.0, T0)], __name__="probe_success", slapay_kpi="availability")
    [(where, fields)] = to_measurements(WriteRequest(timeseries=[orphan])).items
    assert "contract_id" not in fields
    assert where == 'probe_success{slapay_kpi="availability"} @ 1790000000000'


def test_stale_markers_are_not_measurements() -> None:
    assert math.isnan(STALE)
    request = WriteRequest(
        timeseries=[
            series(
                [(1.0, T0), (STALE, T0 + 1000)],
                __name__="probe_success",
                slapay_contract="acme-2026",
                slapay_kpi="availability",
            )
        ]
    )
    decoded = to_measurements(request)
    assert [fields["value"] for _, fields in decoded.items] == [1.0]
    other_nan = to_measurements(WriteRequest(timeseries=[probe(value=math.nan)]))
    assert math.isnan(other_nan.items[0][1]["value"])  # left for the validation to refuse


def test_an_out_of_range_timestamp_is_left_for_the_validation() -> None:
    decoded = to_measurements(WriteRequest(timeseries=[probe(timestamp=2**62)]))
    assert isinstance(decoded.items[0][1]["observed_at"], str)


def test_other_protobuf_messages_are_refused() -> None:
    otlp = ExportMetricsServiceRequest()
    resource = otlp.resource_metrics.add().resource.attributes.add()
    resource.key, resource.value.string_value = "service.name", "shop"
    body = bytes(cramjam.snappy.compress_raw(otlp.SerializeToString()))
    with pytest.raises(UndecodablePayload) as caught:
        to_measurements(decode_write_request(body, *HEADERS))
    assert caught.value.status == 400
    for bad in (TimeSeries(samples=[Sample(value=1)]), series([(1, T0)], job="")):
        with pytest.raises(UndecodablePayload):
            to_measurements(WriteRequest(timeseries=[probe(), bad]))


def test_describe_shortens_long_series() -> None:
    assert describe({"__name__": "up", "job": "x"}) == 'up{job="x"}'
    assert len(describe({"__name__": "up", "job": "x" * 1000})) == 300


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "status"),
    [
        (b"\x05garbage", *HEADERS, 400),
        (b"", *HEADERS, 400),
        (bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff")), *HEADERS, 400),
        (b"\xff\xff\xff\xff\x0f", *HEADERS, 413),
        (snappy(WriteRequest(timeseries=[probe()])), "application/json", "snappy", 415),
        (snappy(WriteRequest(timeseries=[probe()])), "application/x-protobuf", None, 415),
        (snappy(WriteRequest(timeseries=[probe()])), "application/x-protobuf", "gzip", 415),
        (
            snappy(WriteRequest(timeseries=[probe()])),
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            "snappy",
            415,
        ),
    ],
    ids=[
        "corrupt-snappy",
        "empty-body",
        "truncated-protobuf",
        "snappy-bomb",
        "json",
        "uncompressed",
        "gzip",
        "remote-write-2",
    ],
)
def test_undecodable_requests(
    body: bytes, content_type: str, encoding: str | None, status: int
) -> None:
    with pytest.raises(UndecodablePayload) as caught:
        decode_write_request(body, content_type, encoding)
    assert caught.value.status == status
