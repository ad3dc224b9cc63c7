"""Measurement events read straight from their bytes: the ledger fold's hot path.

Parsing an envelope with pydantic and then validating its payload costs a good share of what
the fold spends on a measurement; msgspec reads the form ingest writes, checking every field,
at a fraction of that, and builds no model. `read` accepts only what
`Envelope` and `MeasurementRecorded` accept, and yields the very values they would; for
anything else (another type, an extra field, a value pydantic would coerce, a timestamp in
a rarer ISO 8601 form) it returns None and the caller parses the envelope as always, which
accepts the record or refuses it with a reason. `tests/unit/test_measured.py` holds the two
readers side by side on each kind of deviation.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

import msgspec

from shared.bus import Record
from shared.consuming import Decoded, Delivered, envelope_of
from shared.core import decimals
from shared.core.agents import Party
from shared.events import Envelope, MeasurementRecorded

TYPE = MeasurementRecorded.TYPE
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
"""RFC 3339 with at most microseconds: a form in which pydantic and `datetime.fromisoformat`
read the same instant (past microseconds they round differently)."""
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An event id as `str(uuid.UUID(...))` writes it (other spellings go to pydantic)."""


class DeliveredMeasurement(NamedTuple):
    """A valid `sla.measurement.recorded` event, its place on the bus and its bytes (what a
    dead letter quotes): all the ledger needs to fold it."""

    event_id: str
    contract_id: str
    occurred_at: datetime
    recorded_at: datetime
    kpi: str
    value: str
    """The decimal as its JSON number spelled it ("41.5", "1e308"): stored as that text, so
    the fold never parses it; `number` is the decimal."""
    topic: str
    partition: int
    offset: int
    raw: bytes
    party: str | None = None
    """The signing key's party, for a measurement that came in a signed request; `batch`
    and `batch_index` name that request (a `sla.batch.signed` digest) and its place in it."""
    batch: str | None = None
    batch_index: int | None = None

    @property
    def type(self) -> str:
        return TYPE

    @property
    def number(self) -> Decimal:
        return Decimal(self.value)

    @classmethod
    def of(
        cls, event: Envelope, topic: str, partition: int, offset: int, raw: bytes
    ) -> DeliveredMeasurement:
        """From an envelope pydantic has parsed, its payload valid; the value's text is
        read from `raw`, as the fold's reader reads it."""
        data = event.data
        return cls(
            str(event.event_id),
            event.contract_id,
            event.occurred_at,
            event.recorded_at,
            data["kpi"],
            _spelled_in(raw) or str(decimals.measurement_value(data["value"])),
            topic,
            partition,
            offset,
            raw,
            data.get("party"),
            data.get("batch"),
            data.get("batch_index"),
        )


# gc=False: these hold only strings and numbers (no cycle can run through them), so the
# collector need not track one per record read
class _Data(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    kpi: str
    value: Any  # an int, or a number with a fraction or exponent as its digits (bytes)
    labels: dict[str, str] = {}
    measurement_id: str | None = None
    batch: str | None = None
    batch_index: Annotated[int, msgspec.Meta(ge=0)] | None = None
    party: Party | None = None


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    event_id: str
    type: Literal["sla.measurement.recorded"]
    contract_id: str
    occurred_at: str
    recorded_at: str
    source: str
    data: _Data
    schema_version: int = 1


class _SpelledData(msgspec.Struct, gc=False):
    value: Any = None


class _Spelled(msgspec.Struct, gc=False):
    data: _SpelledData


# float_hook: a JSON number with a fraction or an exponent comes as its own digits, in
# bytes (so that a JSON string, a str, is told apart: pydantic reads that too)
_decoder = msgspec.json.Decoder(_Envelope, float_hook=str.encode)
_spelled = msgspec.json.Decoder(_Spelled, float_hook=str.encode)
_LARGEST = int(decimals.MAX_DOUBLE)
_new_tuple = tuple.__new__  # as `shared.bus.kafka._record`: made for every measurement read


def read(record: Record) -> DeliveredMeasurement | None:
    """The measurement in `record`, or None if it is not one in the usual form."""
    try:
        event = _decoder.decode(record.value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    occurred_at, recorded_at = _instant(event.occurred_at), _recorded(event.recorded_at)
    spelled = event.data.value
    value: str | None
    if type(spelled) is bytes:
        text = spelled.decode()
        # past 17 characters, or with an exponent, it may be out of bounds: check
        value = _within_bounds(text) if len(text) > 17 or "e" in text or "E" in text else text
    else:
        value = _number_text(spelled)
    if (
        _UUID.fullmatch(event.event_id) is None
        or occurred_at is None
        or recorded_at is None
        or value is None
    ):
        return None
    return _new_tuple(
        DeliveredMeasurement,
        (
            event.event_id,
            event.contract_id,
            occurred_at,
            recorded_at,
            event.data.kpi,
            value,
            record.topic,
            record.partition,
            record.offset,
            record.value,
            event.data.party,
            event.data.batch,
            event.data.batch_index,
        ),
    )


def _number_text(value: object) -> str | None:
    """An integer's text if it is a measurement value every reader holds, else None (a
    string or a bool, which pydantic reads, or a number out of bounds, which it refuses)."""
    if type(value) is int:
        return str(value) if -_LARGEST <= value <= _LARGEST else None
    return None


def _within_bounds(text: str) -> str | None:
    """A JSON number's text if every reader holds it (under 18 characters and without an
    exponent, any number is)."""
    return text if decimals.in_bounds(Decimal(text)) else None


def _spelled_in(raw: bytes) -> str | None:
    """The text of `data.value` as `raw` spells it, if it is a JSON number."""
    try:
        value = _spelled.decode(raw).data.value
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if type(value) is bytes:
        return value.decode()
    return str(value) if type(value) is int else None


def _instant(text: str) -> datetime | None:
    """The UTC instant `text` names, as `Envelope` would read it; None outside `_INSTANT`
    (or not a real date, or out of range once in UTC: pydantic then says why)."""
    if _INSTANT.fullmatch(text) is None:
        return None
    try:
        found = datetime.fromisoformat(text)
        return found if found.tzinfo is UTC else found.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


_recorded = functools.lru_cache(maxsize=64)(_instant)
"""`recorded_at` is the same for every measurement of one ingest request."""


Incoming = Delivered | DeliveredMeasurement
"""What the fold and the auditor read: an envelope, or a measurement read without one."""


def decode_measurements(records: Sequence[Record]) -> Decoded:
    """`consuming.decode`, but each measurement event becomes a `DeliveredMeasurement`: read
    by msgspec when it is in the form ingest writes, else from the envelope pydantic parsed.
    The record's `type` header only picks the reader to try. Events are counted by type as
    they are read (the loop's metrics), measurements without asking each its type."""
    delivered: list[Incoming] = []
    failures = []
    counts: Counter[str] = Counter()
    fast_reads = 0
    for record in records:
        if record.headers.get("type") == TYPE:
            fast = read(record)
            if fast is not None:
                delivered.append(fast)
                fast_reads += 1
                continue
        found = envelope_of(record)
        if isinstance(found, str):
            failures.append((record.topic, record.key, record.value, found))
            continue
        counts[found.type] += 1
        if found.type == TYPE:
            delivered.append(
                DeliveredMeasurement.of(
                    found.event, record.topic, record.partition, record.offset, record.value
                )
            )
        else:
            delivered.append(found)
    if fast_reads:
        counts[TYPE] += fast_reads
    return Decoded(delivered, failures, counts)
