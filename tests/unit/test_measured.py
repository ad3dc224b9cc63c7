"""`shared.measured`, the fold's msgspec reader, beside the envelope models it stands in for:
on every kind of record, `decode_measurements(...)` gives exactly what parsing the
envelope with pydantic gives (the same values, or a refusal), and the fast reader is the one
that ran for the form ingest writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import measured
from shared.bus import Record
from shared.consuming import Decoded, Delivered, decode
from shared.events import TOPIC_MEASUREMENTS, Envelope, MeasurementRecorded, make_event
from shared.measured import DeliveredMeasurement, decode_measurements

HEADERS = {"type": MeasurementRecorded.TYPE}


def envelope(**changes: Any) -> dict[str, Any]:
    event = make_event(
        MeasurementRecorded(kpi="latency_ms", value=41.5, labels={"probe": "eu-1"}),
        contract_id="acme-hosting",
        source="agent:probe",
        producer_id="m-1",
        occurred_at=datetime(2026, 10, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    )
    body: dict[str, Any] = orjson.loads(event.to_json())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = body
        for name in parents:
            target = target[name]
        if value is DROP:
            del target[leaf]
        else:
            target[leaf] = value
    return body


DROP = object()
SIGNED = {"data__batch": "sha256:" + "ab" * 32, "data__batch_index": 3, "data__party": "customer"}


def record(raw: bytes) -> Record:
    return Record(TOPIC_MEASUREMENTS, 2, 17, "acme-hosting", raw, HEADERS)


def reference(rec: Record) -> Decoded:
    """What the envelope models make of `rec`, measurements built from the envelope."""
    decoded = decode([rec])
    return Decoded(
        [
            DeliveredMeasurement.of(d.event, rec.topic, rec.partition, rec.offset, rec.value)
            if isinstance(d, Delivered) and d.type == MeasurementRecorded.TYPE
            else d
            for d in decoded.delivered
        ],
        decoded.failures,
    )


def exactly(decoded: Decoded) -> list[Any]:
    """Comparable down to the time zone object and the value's type."""
    return [
        (d, repr(d.occurred_at), repr(d.recorded_at), type(d.value))
        if isinstance(d, DeliveredMeasurement)
        else d
        for d in decoded.delivered
    ] + [(topic, key, value) for topic, key, value, _ in decoded.failures]


def raw(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def text(body: str) -> Callable[[], bytes]:
    return lambda: body.encode()


def spelled(number: str) -> Callable[[], bytes]:
    """The envelope with `data.value` the JSON number written exactly so."""
    return text(raw(envelope()).decode().replace("41.5", number))


CASES: dict[str, tuple[Callable[[], bytes], bool]] = {
    # name: (record value, read by the fast reader?)
    "as ingest writes it": (lambda: raw(envelope()), True),
    "keys in another order": (lambda: raw(dict(reversed(envelope().items()))), True),
    "integer value": (lambda: raw(envelope(data__value=3)), True),
    "no labels, no measurement id": (
        lambda: raw(envelope(data__labels=DROP, data__measurement_id=DROP)),
        True,
    ),
    "offset instead of Z": (lambda: raw(envelope(occurred_at="2026-11-01T01:30:00+02:00")), True),
    "negative zero offset": (lambda: raw(envelope(recorded_at="2026-11-01T00:00:00-00:00")), True),
    "one fraction digit": (lambda: raw(envelope(occurred_at="2026-10-01T00:00:00.5Z")), True),
    "upper-case event id": (
        lambda: raw(envelope(event_id=envelope()["event_id"].upper())),
        False,
    ),
    "schema version 2": (lambda: raw(envelope(schema_version=2)), True),
    "no schema version": (lambda: raw(envelope(schema_version=DROP)), True),
    "seven fraction digits": (
        lambda: raw(envelope(occurred_at="2026-10-31T23:59:59.9999999Z")),
        False,
    ),
    "space for T": (lambda: raw(envelope(occurred_at="2026-10-01 00:00:00Z")), False),
    "extra envelope field": (lambda: raw(envelope(trace="x")), False),
    "value as a string": (lambda: raw(envelope(data__value="0.5")), False),
    "value true": (lambda: raw(envelope(data__value=True)), False),
    "event id without hyphens": (
        lambda: raw(envelope(event_id=envelope()["event_id"].replace("-", ""))),
        False,
    ),
    "another event type": (
        lambda: raw(envelope(type="contract.terms.agreed", data={"version": 1, "terms": {}})),
        False,
    ),
    # refused by both
    "extra payload field": (lambda: raw(envelope(data__unit="ms")), False),
    "no kpi": (lambda: raw(envelope(data__kpi=DROP)), False),
    "label not a string": (lambda: raw(envelope(data__labels={"probe": 1})), False),
    "naive timestamp": (lambda: raw(envelope(occurred_at="2026-10-01T00:00:00")), False),
    "no such day": (lambda: raw(envelope(occurred_at="2026-02-30T00:00:00Z")), False),
    "before the first UTC instant": (
        lambda: raw(envelope(occurred_at="0001-01-01T00:00:00+01:00")),
        False,
    ),
    "digits not ASCII": (
        lambda: raw(envelope(occurred_at="\u0662\u0660\u0662\u0666-10-01T00:00:00Z")),
        False,
    ),
    "hour 24": (lambda: raw(envelope(occurred_at="2026-10-01T24:00:00Z")), False),
    "bad event id": (lambda: raw(envelope(event_id="m-1")), False),
    "contract id a number": (lambda: raw(envelope(contract_id=7)), False),
    "value NaN": (text(raw(envelope()).decode().replace("41.5", "NaN")), False),
    "value beyond float": (text(raw(envelope()).decode().replace("41.5", "1e400")), False),
    "value twice": (
        text(raw(envelope()).decode().replace('"value":41.5', '"value":1,"value":2')),
        True,
    ),
    "value a 400-digit integer": (
        text(raw(envelope()).decode().replace("41.5", "1" + "0" * 399)),
        False,
    ),
    "value with 33 digits": (spelled("123456789012345.123456789012345678"), True),
    "value a float's noise": (spelled("0.30000000000000004"), True),
    "value a double's exact expansion": (
        spelled("0.1000000000000000055511151231257827021181583404541015625"),
        True,
    ),
    "value the largest double": (spelled("1.7976931348623157e308"), True),
    "value past the largest double": (spelled("1.7976931348623158e308"), False),
    "value the smallest double": (spelled("5e-324"), True),
    "value 1074 places": (spelled("1e-1074"), True),
    "value 1075 places": (spelled("1e-1075"), False),
    "value 1075 places spelled out": (spelled("0." + "0" * 1074 + "1"), False),
    "value 1074 places spelled out": (spelled("0." + "0" * 1073 + "1"), True),
    "not JSON": (lambda: b"{not json", False),
    "signed": (lambda: raw(envelope(**SIGNED)), True),
    "signed, batch index a string": (
        lambda: raw(envelope(**{**SIGNED, "data__batch_index": "3"})),
        False,
    ),
    # refused by both (signed)
    "signed, unknown party": (lambda: raw(envelope(**{**SIGNED, "data__party": "auditor"})), False),
    "signed, negative batch index": (
        lambda: raw(envelope(**{**SIGNED, "data__batch_index": -1})),
        False,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_fold_reader_agrees_with_the_envelope_models(name: str) -> None:
    make, fast = CASES[name]
    rec = record(make())
    assert exactly(decode_measurements([rec])) == exactly(reference(rec))
    assert (measured.read(rec) is not None) is fast


def test_each_case_says_what_the_models_make_of_it() -> None:
    """The cases above cover acceptance and refusal alike (else agreement proves little)."""
    outcomes = {name: bool(reference(record(make())).failures) for name, (make, _) in CASES.items()}
    assert sum(outcomes.values()) == 19
    assert not outcomes["value as a string"]  # both read the decimal it spells


def test_the_fast_reader_keeps_the_place_and_bytes() -> None:
    rec = record(raw(envelope()))
    found = measured.read(rec)
    assert found is not None
    assert (found.topic, found.partition, found.offset, found.raw) == (
        TOPIC_MEASUREMENTS,
        2,
        17,
        rec.value,
    )
    event = Envelope.from_json(rec.value)
    assert found.event_id == str(event.event_id)
    assert found.occurred_at == datetime(2026, 10, 31, 23, 59, 59, 999_999, tzinfo=UTC)


def test_without_the_type_header_the_models_read_it() -> None:
    rec = record(raw(envelope()))._replace(headers={})
    (found,) = decode_measurements([rec]).delivered
    assert exactly(Decoded([found], [])) == exactly(reference(rec))


def test_consumers_that_ask_for_envelopes_get_envelopes() -> None:
    (found,) = decode([record(raw(envelope()))]).delivered
    assert isinstance(found, Delivered)


instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
offsets = st.sampled_from(["Z", "+00:00", "+05:30", "-08:00", "+14:00", "-12:00"])


@given(
    instant=instants,
    offset=offsets,
    digits=st.integers(0, 6),
    value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
)
def test_any_canonical_measurement_reads_the_same(
    instant: datetime, offset: str, digits: int, value: float
) -> None:
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        stamp += "." + f"{instant.microsecond:06d}"[:digits]
    stamp += offset
    rec = record(raw(envelope(occurred_at=stamp, data__value=value)))
    found = decode_measurements([rec])
    assert exactly(found) == exactly(reference(rec))
    assert measured.read(rec) is not None
    (m,) = found.delivered
    assert isinstance(m, DeliveredMeasurement)
    assert m.number == (Decimal(repr(value)) if isinstance(value, float) else Decimal(value))


@pytest.mark.parametrize(
    "number",
    [
        "0.1",
        "0.30000000000000004",
        "123456789012345.123456789012345678",
        "-999999999999999.999999999999999999",
        "0.1000000000000000055511151231257827021181583404541015625",
        "1e308",
        "5e-324",
        "40",
    ],
)
def test_both_readers_take_the_decimal_the_json_number_spells(number: str) -> None:
    rec = record(spelled(number)())
    fast = measured.read(rec)
    (slow,) = reference(rec).delivered
    assert fast is not None and isinstance(slow, DeliveredMeasurement)
    assert fast.value == slow.value == number  # its own digits, stored as they are
    assert fast.number == slow.number == Decimal(number)
    event = Envelope.from_json(rec.value)
    payload = event.payload()
    assert isinstance(payload, MeasurementRecorded) and payload.value == Decimal(number)
