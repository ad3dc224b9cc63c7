"""Prometheus remote write 1.0: a snappy-compressed `WriteRequest` becomes measurements.

Every sample of a series labelled `slapay_kpi` is one measurement, of the contract its
`slapay_contract` label names (a series without it is invalid); series without `slapay_kpi`
are counted and ignored, so a contract label set on a whole scrape target only marks the
series that also name a KPI. The measurement id is derived from the series' full
label set and the sample's timestamp, so a request Prometheus retries never counts twice.
A request holds at most `MAX_BATCH` samples and `MAX_BATCH` series: the uncompressed length
snappy announces is checked before uncompressing; a body past `WALK_ABOVE_BYTES` is walked
field by field, counting, before any message object is built (a smaller one cannot hold
enough messages to matter, and the C parser reads it faster than a walk); then the series
and samples are counted on the parsed request (413 beyond any bound).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import cramjam
from google.protobuf.message import DecodeError

from services.ingest import bounds
from services.ingest.measurements import Decoded, UndecodablePayload, from_float, label_digest
from services.ingest.prometheus_remote_pb2 import WriteRequest

CONTRACT_LABEL = "slapay_contract"
KPI_LABEL = "slapay_kpi"
PROTO_PARAMETER = "prometheus.WriteRequest"
MAX_DECODED_BYTES = 16 * 1024 * 1024
_SERIES = bounds.Message({1: bounds.Message({}), 2: bounds.Message({})}, points=frozenset({2}))
WRITE_REQUEST = bounds.Message({1: _SERIES})
"""What is counted in a `WriteRequest`: its series, their labels and their samples."""
WALK_ABOVE_BYTES = 1024 * 1024
STALE_NAN = 0x7FF0000000000002  # Prometheus' staleness marker: a series ended, not a value
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode_write_request(
    body: bytes,
    content_type: str | None,
    content_encoding: str | None,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
) -> WriteRequest:
    """Check the headers Prometheus sends, uncompress (snappy block format), count and parse;
    raises `bounds.TooLarge` past `MAX_BATCH` samples."""
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != "application/x-protobuf":
        raise UndecodablePayload(
            415, "Unsupported media type", "remote write needs Content-Type application/x-protobuf"
        )
    proto = _parameter(parameters, "proto")
    if proto not in (None, PROTO_PARAMETER):
        raise UndecodablePayload(
            415, "Unsupported media type", f"only remote write 1.0 ({PROTO_PARAMETER}) is supported"
        )
    if (content_encoding or "").strip().lower() != "snappy":
        raise UndecodablePayload(
            415, "Unsupported content encoding", "remote write needs Content-Encoding snappy"
        )
    size = _snappy_length(body)
    if size > max_decoded_bytes:
        raise UndecodablePayload(
            413, "Content too large", f"{size} bytes uncompressed; at most {max_decoded_bytes}"
        )
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise UndecodablePayload(400, "Corrupt snappy data", str(exc)) from exc
    try:
        if len(raw) > WALK_ABOVE_BYTES:
            bounds.count_protobuf(raw, WRITE_REQUEST, {})
        request = WriteRequest.FromString(raw)
    except (DecodeError, ValueError) as exc:
        if isinstance(exc, bounds.TooLarge):
            raise
        raise UndecodablePayload(400, "Not a remote write WriteRequest", str(exc)) from exc
    _check_counts(request)
    return request


def _check_counts(request: WriteRequest) -> None:
    """Raise `bounds.TooLarge` past `MAX_BATCH` series or samples, or past
    `MAX_PROTOBUF_ELEMENTS` labels (counted in C, series by series)."""
    series = request.timeseries
    if len(series) > bounds.MAX_BATCH:
        raise bounds.TooLarge(f"{len(series)} series; at most {bounds.MAX_BATCH} per request")
    samples = labels = 0
    for one in series:
        samples += len(one.samples)
        labels += len(one.labels)
    if samples > bounds.MAX_BATCH:
        raise bounds.TooLarge(f"{samples} samples; at most {bounds.MAX_BATCH} per request")
    if labels > bounds.MAX_PROTOBUF_ELEMENTS:
        raise bounds.TooLarge(f"{labels} labels; at most {bounds.MAX_PROTOBUF_ELEMENTS}")


def to_measurements(request: WriteRequest) -> Decoded:
    """The measurement candidates of a request: one per sample of a slapay-labelled series.

    A series without labels, or with an empty label name or value, breaks the protocol (and
    is what another protobuf message read as a `WriteRequest` looks like): 400."""
    decoded = Decoded()
    for index, series in enumerate(request.timeseries):
        labels = {label.name: label.value for label in series.labels}
        if not labels or "" in labels or "" in labels.values():
            raise UndecodablePayload(
                400,
                "Not a remote write WriteRequest",
                f"series {index} has no labels, or a label without a name or value",
            )
        if KPI_LABEL not in labels:
            decoded.ignored += 1
            continue
        digest = label_digest(labels.items())
        for sample in series.samples:
            if _is_stale_marker(sample.value):
                continue
            decoded.items.append(
                (
                    f"{describe(labels)} @ {sample.timestamp}",
                    _fields(labels, digest, sample.value, sample.timestamp),
                )
            )
    return decoded


def describe(labels: dict[str, str]) -> str:
    """A series as Prometheus writes it: `name{label="value",...}` (shortened if long)."""
    name = labels.get("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    text = f"{name}{{{inner}}}"
    return text if len(text) <= 300 else text[:297] + "..."


def _fields(labels: dict[str, str], digest: str, value: float, timestamp: int) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "measurement_id": f"prom:{digest}:{timestamp}",
        "value": from_float(value),
        "observed_at": _from_millis(timestamp),
        "labels": {k: v for k, v in labels.items() if k not in (CONTRACT_LABEL, KPI_LABEL)},
    }
    if CONTRACT_LABEL in labels:
        fields["contract_id"] = labels[CONTRACT_LABEL]
    if KPI_LABEL in labels:
        fields["kpi"] = labels[KPI_LABEL]
    return fields


def _from_millis(timestamp: int) -> datetime | str:
    """Milliseconds since the epoch; out of range stays a string the validation refuses."""
    try:
        return _EPOCH + timedelta(milliseconds=timestamp)
    except OverflowError:
        return f"timestamp {timestamp} ms is out of range"


def _is_stale_marker(value: float) -> bool:
    return math.isnan(value) and struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN


def _snappy_length(body: bytes) -> int:
    """The uncompressed length a snappy block announces in its varint header."""
    length = 0
    for index, byte in enumerate(body[:5]):
        length |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return length
    raise UndecodablePayload(400, "Corrupt snappy data", "no valid snappy length header")


def _parameter(parameters: str, name: str) -> str | None:
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        if key.strip().lower() == name:
            return value.strip().strip('"')
    return None
