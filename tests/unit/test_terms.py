import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.core.periods import PeriodFinder, period_bounds, period_of
from shared.core.terms import Terms, terms_in_force, version_in_force
from tests.unit.terms_examples import design_terms

DELETE = object()


@pytest.fixture
def terms_data() -> dict[str, Any]:
    return design_terms()


def changed(data: dict[str, Any], *changes: tuple[tuple[Any, ...], Any]) -> dict[str, Any]:
    for path, value in changes:
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return data


def test_the_design_example_is_valid(terms_data: dict[str, Any]) -> None:
    terms = Terms.model_validate(terms_data)
    assert terms.timezone == "UTC"
    assert terms.max_credit_percent == 50
    assert terms.late_events_months == 12
    assert terms.reviews is not None and terms.reviews.bonus_requires_sla_met
    assert terms.kpi("latency_ms") is terms.kpis[1]
    assert terms.kpi("missing") is None


def test_defaults(terms_data: dict[str, Any]) -> None:
    for key in ["reviews", "max_credit_percent", "grace_days"]:
        del terms_data[key]
    terms = Terms.model_validate(terms_data)
    assert (terms.reviews, terms.max_credit_percent, terms.grace_days) == (None, 100, 3)


def test_review_defaults(terms_data: dict[str, Any]) -> None:
    terms_data["reviews"] = {"max_bonus_percent": 5, "max_penalty_percent": 2}
    reviews = Terms.model_validate(terms_data).reviews
    assert reviews is not None
    assert (reviews.min_reviews, reviews.neutral, reviews.trim_percent) == (3, 3.0, 0)
    assert reviews.bonus_requires_sla_met is True


@pytest.mark.parametrize(
    ("currency", "given_fee", "stored_fee"),
    [("EUR", 10000, "10000.00"), ("EUR", "10.000", "10.00"), ("JPY", "8000", "8000")],
)
def test_base_fee_is_accepted_as_string_or_number_and_serialised_as_string(
    terms_data: dict[str, Any], currency: str, given_fee: object, stored_fee: str
) -> None:
    terms_data.update(currency=currency, base_fee=given_fee)
    terms = Terms.model_validate(terms_data)
    assert terms.model_dump()["base_fee"] == stored_fee
    assert json.loads(terms.model_dump_json())["base_fee"] == stored_fee


def test_json_round_trip(terms_data: dict[str, Any]) -> None:
    terms = Terms.model_validate_json(json.dumps(terms_data))
    assert Terms.model_validate_json(terms.model_dump_json()) == terms
    assert Terms.model_validate(terms.model_dump()) == terms


def test_terms_are_frozen(terms_data: dict[str, Any]) -> None:
    terms = Terms.model_validate(terms_data)
    with pytest.raises(ValidationError):
        terms.base_fee = 0  # type: ignore[misc,assignment]
    assert isinstance(terms.kpis, tuple)


K0, K1, K2 = ("kpis", 0), ("kpis", 1), ("kpis", 2)
INVALID = [
    # (why, changes, loc of the one error)
    ("contract id too short", [(("contract_id",), "ac")], ("contract_id",)),
    ("contract id with capitals", [(("contract_id",), "Acme-2026")], ("contract_id",)),
    ("provider missing", [(("provider",), DELETE)], ("provider",)),
    ("customer empty", [(("customer",), "")], ("customer",)),
    ("currency not ISO", [(("currency",), "EURO")], ("currency",)),
    ("currency lower case", [(("currency",), "eur")], ("currency",)),
    ("base fee negative", [(("base_fee",), "-1")], ("base_fee",)),
    ("base fee past the cent", [(("base_fee",), "10.001")], ("base_fee",)),
    ("base fee in yen cents", [(("currency",), "JPY"), (("base_fee",), "10.5")], ("base_fee",)),
    ("base fee not a number", [(("base_fee",), "ten")], ("base_fee",)),
    ("base fee NaN", [(("base_fee",), "NaN")], ("base_fee",)),
    ("base fee absurd", [(("base_fee",), "1e16")], ("base_fee",)),
    ("effective month 13", [(("effective_from",), "2026-13")], ("effective_from",)),
    ("effective not YYYY-MM", [(("effective_from",), "2026-1")], ("effective_from",)),
    ("timezone unknown", [(("timezone",), "Mars/Olympus")], ("timezone",)),
    ("timezone wrong case", [(("timezone",), "europe/berlin")], ("timezone",)),
    ("kpi names repeat", [((*K1, "name"), "availability")], ("kpis",)),
    ("kpi name with space", [((*K0, "name"), "up time")], (*K0, "name")),
    ("aggregation unknown", [((*K0, "aggregation"), "median")], (*K0, "aggregation")),
    ("percentile 100", [((*K1, "aggregation"), "p100")], (*K1, "aggregation")),
    ("percentile 0", [((*K1, "aggregation"), "p0")], (*K1, "aggregation")),
    ("percentile trailing 0", [((*K1, "aggregation"), "p99.90")], (*K1, "aggregation")),
    ("share without threshold", [((*K2, "threshold"), DELETE)], (*K2, "threshold")),
    ("threshold on a mean", [((*K0, "threshold"), 5)], (*K0, "threshold")),
    ("share target as percent", [((*K2, "target"), 90)], (*K2, "target")),
    ("share breach as percent", [((*K2, "credits", 1, "breach"), 75)], (*K2, "credits")),
    ("objective unknown", [((*K0, "objective"), ">")], (*K0, "objective")),
    ("target as a string", [((*K0, "target"), "0.999")], (*K0, "target")),
    ("target as a bool", [((*K0, "target"), True)], (*K0, "target")),
    (">= breaches rising", [((*K0, "credits", 1, "breach"), 0.9995)], (*K0, "credits")),
    ("<= breaches falling", [((*K1, "credits", 1, "breach"), 200)], (*K1, "credits")),
    ("percents not rising", [((*K0, "credits", 1, "percent"), 10)], (*K0, "credits")),
    ("percent over 100", [((*K0, "credits", 2, "percent"), 101)], (*K0, "credits", 2, "percent")),
    ("percent negative", [((*K0, "credits", 0, "percent"), -1)], (*K0, "credits", 0, "percent")),
    (
        "tier without breach",
        [((*K0, "credits", 0, "breach"), DELETE)],
        (*K0, "credits", 0, "breach"),
    ),
    ("unknown kpi field", [((*K0, "weight"), 2)], (*K0, "weight")),
    ("unknown terms field", [(("discount",), 2)], ("discount",)),
    ("neutral at 5", [(("reviews", "neutral"), 5)], ("reviews", "neutral")),
    ("neutral at 1", [(("reviews", "neutral"), 1)], ("reviews", "neutral")),
    ("bonus over 100", [(("reviews", "max_bonus_percent"), 150)], ("reviews", "max_bonus_percent")),
    (
        "penalty negative",
        [(("reviews", "max_penalty_percent"), -1)],
        ("reviews", "max_penalty_percent"),
    ),
    ("trim half", [(("reviews", "trim_percent"), 50)], ("reviews", "trim_percent")),
    ("min reviews 0", [(("reviews", "min_reviews"), 0)], ("reviews", "min_reviews")),
    ("cap over 100", [(("max_credit_percent",), 101)], ("max_credit_percent",)),
    ("grace negative", [(("grace_days",), -1)], ("grace_days",)),
    ("grace fractional", [(("grace_days",), 1.5)], ("grace_days",)),
    ("late months 0", [(("late_events_months",), 0)], ("late_events_months",)),
    # issue 19: bounds so that no contract upsets the others
    ("grace a billion days", [(("grace_days",), 1_000_000_000)], ("grace_days",)),
    ("grace past a year", [(("grace_days",), 367)], ("grace_days",)),
    ("effective from year 0", [(("effective_from",), "0000-01")], ("effective_from",)),
    ("effective before 2000", [(("effective_from",), "1999-12")], ("effective_from",)),
    ("late months past 120", [(("late_events_months",), 121)], ("late_events_months",)),
    # numbers: exact decimals a double reads back the same
    ("target 16 digits", [((*K0, "target"), 0.1234567890123456)], (*K0, "target")),
    (
        "breach 17 digits",
        [((*K0, "credits", 2, "breach"), 0.30000000000000004)],
        (*K0, "credits", 2, "breach"),
    ),
    ("threshold infinite", [((*K2, "threshold"), float("inf"))], (*K2, "threshold")),
    ("cap 16 digits", [(("max_credit_percent",), 33.33333333333333)], ("max_credit_percent",)),
    # no_data and min_count
    ("no_data unknown", [((*K0, "no_data"), "ignore")], (*K0, "no_data")),
    ("min_count 0", [((*K0, "min_count"), 0)], (*K0, "min_count")),
    ("min_count fractional", [((*K0, "min_count"), 1.5)], (*K0, "min_count")),
    ("min_count a string", [((*K0, "min_count"), "3")], (*K0, "min_count")),
]


@pytest.mark.parametrize(("why", "changes", "loc"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_terms_name_the_field(
    terms_data: dict[str, Any],
    why: str,
    changes: list[tuple[tuple[Any, ...], Any]],
    loc: tuple[Any, ...],
) -> None:
    with pytest.raises(ValidationError) as raised:
        Terms.model_validate(changed(terms_data, *changes))
    assert [error["loc"] for error in raised.value.errors()] == [loc], why


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("effective_from", "2000-01"),
        ("effective_from", "9999-12"),
        ("grace_days", 0),
        ("grace_days", 366),
        ("late_events_months", 1),
        ("late_events_months", 120),
        ("max_credit_percent", 0),
        ("max_credit_percent", 100),
    ],
)
def test_terms_bounds_are_inclusive(terms_data: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(Terms.model_validate({**terms_data, field: value}), field) == value


def test_terms_numbers_are_the_decimals_their_json_spells(terms_data: dict[str, Any]) -> None:
    terms_data["kpis"][0]["target"] = 0.1
    terms_data["kpis"][0]["credits"][0]["breach"] = 0.999999999999999  # 15 digits
    terms = Terms.model_validate_json(json.dumps(terms_data))
    assert terms.kpis[0].target == Decimal("0.1")
    assert terms.kpis[0].credits[0].breach == Decimal("0.999999999999999")
    assert terms.kpis[1].credits[1].percent == Decimal(15)
    written = json.loads(terms.model_dump_json())
    assert written["kpis"][0]["target"] == 0.1  # a JSON number, not a string
    assert written["kpis"][0]["credits"][0]["breach"] == 0.999999999999999
    assert written["kpis"][1]["credits"][1]["percent"] == 15
    assert isinstance(written["max_credit_percent"], int)
    assert Terms.model_validate_json(terms.model_dump_json()) == terms


def test_no_data_and_min_count(terms_data: dict[str, Any]) -> None:
    terms_data["kpis"][0].update(no_data="breach", min_count=3)
    terms = Terms.model_validate(terms_data)
    assert (terms.kpis[0].no_data, terms.kpis[0].min_count) == ("breach", 3)
    assert (terms.kpis[1].no_data, terms.kpis[1].min_count) == ("no_credit", None)
    assert json.loads(terms.model_dump_json())["kpis"][0]["no_data"] == "breach"


@pytest.mark.parametrize("aggregation", ["p50", "p95", "p99.9", "p0.5", "p99.99", "count"])
def test_valid_aggregations(terms_data: dict[str, Any], aggregation: str) -> None:
    terms_data["kpis"][1]["aggregation"] = aggregation
    assert Terms.model_validate(terms_data).kpis[1].aggregation == aggregation


def test_terms_in_force_follow_revisions(terms_data: dict[str, Any]) -> None:
    first = Terms.model_validate(terms_data)
    second = first.model_copy(update={"effective_from": "2027-01"})
    versions = [first, second]
    assert terms_in_force(versions, "2026-09") is None
    assert terms_in_force(versions, "2026-10") is first
    assert terms_in_force(versions, "2026-12") is first
    assert terms_in_force(versions, "2027-01") is second
    assert terms_in_force(versions, "2030-05") is second
    assert version_in_force(versions, "2026-12") == 1
    assert version_in_force(versions, "2027-02") == 2
    assert terms_in_force([], "2026-10") is None


def test_period_of_uses_the_contract_timezone() -> None:
    instant = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    assert period_of(instant, "UTC") == "2026-10"
    # Berlin is UTC+1 after DST ended on 2026-10-25: local time 2026-11-01 00:30.
    assert period_of(instant, "Europe/Berlin") == "2026-11"
    # New York is UTC-5 on 2027-01-01T03:00Z: local time 2026-12-31 22:00.
    assert period_of(datetime(2027, 1, 1, 3, tzinfo=UTC), "America/New_York") == "2026-12"
    with pytest.raises(ValueError):
        period_of(datetime(2026, 10, 1), "UTC")


@given(
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu"]),
    st.lists(
        st.datetimes(
            min_value=datetime(2026, 1, 1),
            max_value=datetime(2027, 12, 31),
            timezones=st.just(UTC),
        ),
        max_size=30,
    ),
)
def test_the_period_finder_agrees_with_period_of(tz: str, instants: list[datetime]) -> None:
    """The fold's cached lookup gives what `period_of` gives, around DST and month ends too."""
    find = PeriodFinder(tz)
    edges = [b for p in {period_of(i, tz) for i in instants} for b in period_bounds(p, tz)]
    probes = [x for i in instants + edges for x in (i, i - timedelta(microseconds=1))]
    assert [find(x) for x in probes] == [period_of(x, tz) for x in probes]


def test_period_bounds_across_dst() -> None:
    # Berlin: October starts in summer time (UTC+2) and ends in winter time (UTC+1).
    start, end = period_bounds("2026-10", "Europe/Berlin")
    assert start == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert end == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert end - start == timedelta(days=31, hours=1)
    assert period_bounds("2026-12", "UTC") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError):
        period_bounds("2026-13", "UTC")


ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "America/Sao_Paulo",
    "Asia/Beirut",
    "Africa/Cairo",
    "Australia/Lord_Howe",
    "Pacific/Apia",
    "Asia/Kathmandu",
]


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2037, 12, 31)),
    st.sampled_from(ZONES),
)
def test_an_instant_lies_within_the_bounds_of_its_own_period(naive: datetime, tz: str) -> None:
    instant = naive.replace(tzinfo=UTC)
    start, end = period_bounds(period_of(instant, tz), tz)
    assert start <= instant < end
    assert period_of(start, tz) == period_of(instant, tz)
    assert period_of(end - timedelta(microseconds=1), tz) == period_of(instant, tz)
    assert period_of(end, tz) != period_of(instant, tz)


@pytest.mark.parametrize("tz", ZONES)
def test_every_month_starts_where_the_previous_one_ends(tz: str) -> None:
    for year in range(1970, 2038):
        for month in range(1, 13):
            period = f"{year:04d}-{month:02d}"
            start, end = period_bounds(period, tz)
            assert period_of(start, tz) == period
            assert period_of(start - timedelta(microseconds=1), tz) != period
            following = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
            assert period_bounds(following, tz)[0] == end
