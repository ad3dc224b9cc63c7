"""OTLP/HTTP metrics: an `ExportMetricsServiceRequest` becomes measurements.

Gauge and sum data points whose attributes (the point's, else its resource's) name a
`slapay.kpi` are measurements of the contract `slapay.contract` names (a point without it is
invalid); points without `slapay.kpi` are counted and ignored, so a contract set on a whole
resource only marks the points that also name a KPI. Histogram, exponential-histogram and
summary points that name a KPI are refused one by one (OTLP partial success): they hold
distributions, not one value to bill by. A request holds at most `MAX_BATCH` data points of
any kind, counted while the body is decoded (413 beyond).
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, NumberDataPoint

from services.ingest import bounds
from services.ingest.measurements import Decoded, UndecodablePayload, from_float, label_digest

CONTRACT_ATTRIBUTE = "slapay.contract"
KPI_ATTRIBUTE = "slapay.kpi"
SLAPAY_ATTRIBUTES = (CONTRACT_ATTRIBUTE, KPI_ATTRIBUTE)
LABELLED_RESOURCE_ATTRIBUTES = ("service.name", "service.instance.id", "host.name")
PROTOBUF, JSON = "application/x-protobuf", "application/json"
MAX_DECODED_BYTES = 16 * 1024 * 1024
_M = bounds.Message
_POINTS = frozenset({1})
_SCHEMA: dict[str, bounds.Message] = {
    "KeyValue": _M({2: "AnyValue"}),
    "AnyValue": _M({5: _M({1: "AnyValue"}), 6: _M({1: "KeyValue"})}),
}
_ATTRIBUTES = "KeyValue"
_EXEMPLAR = _M({7: _ATTRIBUTES})
_NUMBER_POINT = _M({7: _ATTRIBUTES, 5: _EXEMPLAR})
_BUCKETS = _M({})
EXPORT_REQUEST = _M(
    {
        1: _M(  # ResourceMetrics
            {
                1: _M({1: _ATTRIBUTES}),  # Resource
                2: _M(  # ScopeMetrics
                    {
                        1: _M({3: _ATTRIBUTES}),  # InstrumentationScope
                        2: _M(  # Metric
                            {
                                5: _M({1: _NUMBER_POINT}, _POINTS),  # gauge
                                7: _M({1: _NUMBER_POINT}, _POINTS),  # sum
                                9: _M({1: _M({9: _ATTRIBUTES, 8: _EXEMPLAR})}, _POINTS),
                                10: _M(
                                    {
                                        1: _M(
                                            {
                                                1: _ATTRIBUTES,
                                                8: _BUCKETS,
                                                9: _BUCKETS,
                                                11: _EXEMPLAR,
                                            }
                                        )
                                    },
                                    _POINTS,
                                ),
                                11: _M({1: _M({7: _ATTRIBUTES, 6: _M({})})}, _POINTS),
                                12: _ATTRIBUTES,  # metadata
                            }
                        ),
                    }
                ),
            }
        )
    }
)
"""Every embedded message of an `ExportMetricsServiceRequest` that the parser would build;
the data points of each metric kind are the points counted."""
NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def media_type(content_type: str | None) -> str:
    """`PROTOBUF` or `JSON`, the two encodings OTLP/HTTP defines (else 415)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise UndecodablePayload(
            415, "Unsupported media type", f"OTLP/HTTP takes {PROTOBUF} or {JSON}"
        )
    return media


def decode_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
) -> ExportMetricsServiceRequest:
    """Uncompress (gzip, deflate or none), count and parse either encoding; raises
    `bounds.TooLarge` past `MAX_BATCH` data points."""
    media = media_type(content_type)
    raw = _uncompress(body, content_encoding, max_decoded_bytes)
    request = ExportMetricsServiceRequest()
    try:
        if media == PROTOBUF:
            bounds.count_protobuf(raw, EXPORT_REQUEST, _SCHEMA)
            request.ParseFromString(raw)
        else:
            bounds.check_json_elements(raw)
            document = orjson.loads(raw)
            if not isinstance(document, dict):
                raise ValueError("an OTLP/JSON export is a JSON object")
            _count_json_points(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except bounds.TooLarge:
        raise
    except (DecodeError, json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise UndecodablePayload(400, "Not an OTLP metrics request", str(exc)[:500]) from exc
    return request


def _count_json_points(document: Any) -> None:
    """Raise `bounds.TooLarge` if the JSON export holds more than `MAX_BATCH` data points."""
    points = 0
    for resource in _list(document, "resourceMetrics", "resource_metrics"):
        for scope in _list(resource, "scopeMetrics", "scope_metrics"):
            for metric in _list(scope, "metrics"):
                if not isinstance(metric, dict):
                    continue
                for kind in _KINDS:
                    points += len(_list(metric.get(kind), "dataPoints", "data_points"))
    if points > bounds.MAX_BATCH:
        raise bounds.TooLarge(f"{points} data points; at most {bounds.MAX_BATCH} per request")


_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "exponential_histogram", "summary")


def _list(node: Any, *names: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for name in names:
        found = node.get(name)
        if isinstance(found, list):
            return found
    return []


def to_measurements(request: ExportMetricsServiceRequest) -> Decoded:
    """The measurement candidates of a request, and the data points refused or ignored."""
    decoded = Decoded()
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                for point in getattr(metric, kind).data_points:
                    _add_point(decoded, resource, scope_metrics.scope.name, metric, kind, point)
    return decoded


def _add_point(
    decoded: Decoded, resource: dict[str, str], scope: str, metric: Metric, kind: str, point: Any
) -> None:
    """A point is for slapay when it (or its resource) names a KPI; it then needs a contract."""
    own = _attributes(point.attributes)
    attributes = {**resource, **own}
    if KPI_ATTRIBUTE not in attributes:
        decoded.ignored += 1
    elif kind not in ("gauge", "sum"):
        decoded.rejected.append(
            f"{metric.name!r} is of type {kind.replace('_', ' ')}: slapay takes gauge and sum data "
            "points only (one value per point); export the KPI as a gauge"
        )
    else:
        identity = [
            *(("resource." + k, v) for k, v in resource.items()),
            ("scope", scope),
            ("metric", metric.name),
            *(("point." + k, v) for k, v in own.items()),
        ]
        fields = _fields(metric, point, attributes, own, label_digest(identity))
        if fields is not None:
            decoded.items.append((_where(metric, point, attributes), fields))


def response_body(decoded: Decoded, media: str) -> bytes:
    """An `ExportMetricsServiceResponse`, with `partial_success` set only if points were refused."""
    response = ExportMetricsServiceResponse()
    if decoded.rejected:
        response.partial_success.rejected_data_points = len(decoded.rejected)
        response.partial_success.error_message = "; ".join(dict.fromkeys(decoded.rejected))
    if media == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


def _fields(
    metric: Metric,
    point: NumberDataPoint,
    attributes: dict[str, str],
    own: dict[str, str],
    digest: str,
) -> dict[str, Any] | None:
    """`MeasurementIn` fields; None for a point that says it has no value."""
    fields: dict[str, Any] = {
        "measurement_id": f"otlp:{digest}:{point.time_unix_nano}",
        "labels": {
            "otel.metric": metric.name,
            **{k: v for k, v in attributes.items() if k in LABELLED_RESOURCE_ATTRIBUTES},
            **{k: v for k, v in own.items() if k not in SLAPAY_ATTRIBUTES},
        },
    }
    kind = point.WhichOneof("value")
    if kind is None and point.flags & NO_RECORDED_VALUE:
        return None
    if kind is not None:
        number = getattr(point, kind)
        fields["value"] = from_float(number) if kind == "as_double" else Decimal(number)
    if point.time_unix_nano:
        fields["observed_at"] = _EPOCH + timedelta(microseconds=point.time_unix_nano // 1000)
    for name, field in ((CONTRACT_ATTRIBUTE, "contract_id"), (KPI_ATTRIBUTE, "kpi")):
        if name in attributes:
            fields[field] = attributes[name]
    return fields


def _where(metric: Metric, point: NumberDataPoint, attributes: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(attributes.items()))
    text = f"{metric.name}{{{inner}}} @ {point.time_unix_nano}"
    return text if len(text) <= 300 else text[:297] + "..."


def _attributes(pairs: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        result[pair.key] = _text(pair.value)
    return result


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind))
    return json_format.MessageToJson(getattr(value, kind), indent=None)


def _uncompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", "none", ""):
        return body
    if encoding not in _WBITS:
        raise UndecodablePayload(
            415, "Unsupported content encoding", "OTLP/HTTP here takes gzip, deflate or none"
        )
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        raw = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UndecodablePayload(400, f"Corrupt {encoding} data", str(exc)) from exc
    if len(raw) > limit:
        raise UndecodablePayload(413, "Content too large", f"more than {limit} bytes uncompressed")
    if not inflater.eof:
        raise UndecodablePayload(400, f"Corrupt {encoding} data", "the stream is truncated")
    return raw
