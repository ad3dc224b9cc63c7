"""The door's pure rules: decimal places, value text, terms in force, the late window."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.ingest import door
from services.ingest.contracts import Contract, DoorTerms
from services.ingest.measurements import MeasurementIn, content_digest


@pytest.mark.parametrize(
    ("text", "places", "spelled"),
    [
        ("1.50", 1, "1.5"),
        ("100", 0, "100"),
        ("1E+15", 0, "1000000000000000"),
        ("100E-5", 3, "0.001"),
        ("-0.0", 0, "0"),
        ("0E-30", 0, "0"),
        ("-123456789012345.123456789012345678", 18, "-123456789012345.123456789012345678"),
        ("0.1234567890123456789", 19, None),
        ("1E-999999999", 999999999, None),
    ],
)
def test_decimal_places_and_the_text_published(text: str, places: int, spelled: str | None) -> None:
    value = Decimal(text)
    assert door.decimal_places(value) == places
    refusal = door.value_refusal(0, value)
    if spelled is None:
        assert refusal is not None and refusal.type == "too_many_decimal_places"
    else:
        assert refusal is None
        assert door.value_text(value) == spelled
        assert Decimal(spelled) == value


def test_values_beyond_1e15_are_refused_and_1e15_is_not() -> None:
    assert door.value_refusal(0, Decimal("1e15")) is None
    assert door.value_refusal(0, Decimal("-1e15")) is None
    for beyond in ("1000000000000000.000000000000000001", "-1e16", "1e999999999"):
        refusal = door.value_refusal(3, Decimal(beyond))
        assert refusal is not None
        assert refusal.error()["loc"] == ["measurements", 3, "value"]


def terms(effective_from: str, *kpis: str, late: int = 12, tz: str = "UTC") -> DoorTerms:
    return DoorTerms.model_validate(
        {
            "effective_from": effective_from,
            "timezone": tz,
            "kpis": [{"name": k} for k in kpis],
            "late_events_months": late,
        }
    )


def test_the_terms_in_force_are_the_latest_version_effective_by_the_period() -> None:
    first, second = terms("2026-01", "a"), terms("2026-06", "b", late=3)
    contract = Contract("acme-2026", (first, second))
    assert door.in_force(contract.versions, "2026-05") is first
    assert door.in_force(contract.versions, "2026-06") is second
    assert door.terms_refusal(0, contract, "b", "2026-07", "2026-09") is None
    kpi = door.terms_refusal(0, contract, "a", "2026-07", "2026-09")
    assert kpi is not None and kpi.type == "kpi_unknown"
    early = door.terms_refusal(0, contract, "a", "2025-12", "2026-09")
    assert early is not None and early.type == "before_effective_from"
    late = door.terms_refusal(0, contract, "b", "2026-06", "2026-10")  # 4 months > 3
    assert late is not None and late.type == "too_late"
    assert door.terms_refusal(0, contract, "b", "2026-07", "2026-10") is None
    assert door.terms_refusal(0, None, "a", "2026-07", "2026-10") is not None
    assert door.months_between("2025-11", "2026-02") == 3


def measurement(**changes: object) -> MeasurementIn:
    fields: dict[str, object] = {
        "measurement_id": "m-1",
        "contract_id": "acme-2026",
        "kpi": "availability",
        "value": Decimal("0.5"),
        "observed_at": datetime(2026, 10, 5, 12, tzinfo=UTC),
        "labels": {"a": "1", "b": "2"},
    }
    return MeasurementIn.model_validate({**fields, **changes})


def test_the_digest_tells_other_content_from_the_same() -> None:
    same = content_digest(measurement())
    assert content_digest(measurement(value=Decimal("0.50"))) == same
    assert content_digest(measurement(labels={"b": "2", "a": "1"})) == same
    assert content_digest(measurement(observed_at="2026-10-05T14:00:00+02:00")) == same
    assert content_digest(measurement(measurement_id="m-2")) == same  # the id is not content
    for other in (
        measurement(value=Decimal("0.6")),
        measurement(kpi="latency_ms"),
        measurement(labels={"a": "1"}),
        measurement(observed_at="2026-10-05T12:00:01Z"),
    ):
        assert content_digest(other) != same
    assert content_digest(measurement(value=Decimal("-0"))) == content_digest(measurement(value=0))
