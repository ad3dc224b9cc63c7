"""Worked examples of the payment formula, each computed by hand in its comment.

Unless a case says otherwise: the documented terms, base fee 10000.00 EUR, period 2026-10.
"""

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from shared.core.payment import Line, Observation, Rating, Statement, compute_statement
from shared.core.terms import Terms, terms_in_force, version_in_force
from tests.unit.terms_examples import (
    compliant,
    design_terms,
    observations,
    ratings,
    terms_with,
)

PERIOD = "2026-10"


def line(statement: Statement, kind: str, kpi: str | None = None) -> Line:
    return next(x for x in statement.lines if x.kind == kind and x.kpi == kpi)


def one_kpi_terms(kpi: dict[str, Any], **changes: Any) -> Terms:
    data = {**design_terms(), "kpis": [{"name": "k", **kpi}], "max_credit_percent": 100}
    data.pop("reviews")
    return Terms.model_validate({**data, **changes})


def spec(
    objective: str, target: float, *tiers: tuple[float, float], **extra: Any
) -> dict[str, Any]:
    credits = [{"breach": breach, "percent": percent} for breach, percent in tiers]
    return {"objective": objective, "target": target, "credits": credits, **extra}


DESIGN_GE = spec(">=", 0.999, (0.999, 10), (0.99, 25), (0.95, 50))
DESIGN_LE = spec("<=", 300, (300, 5), (1000, 15))
DESIGN_SHARE = spec(">=", 0.9, (0.9, 5), (0.75, 10), threshold=24)

KPI_CASES = [
    # mean (1 + 1 + 1 + 0.99) / 4 = 0.9975: below 0.999, not below 0.99 → 10 % → -1000.00
    ("mean", DESIGN_GE, [1, 1, 1, 0.99], 0.9975, 10, "-1000.00"),
    # mean exactly 0.999 is not strictly below the 0.999 breach → no tier
    ("mean", DESIGN_GE, [0.999] * 3, 0.999, 0, "0.00"),
    # mean 0.99 sits on the second breach: below 0.999 only → 10 %
    ("mean", DESIGN_GE, [0.99], 0.99, 10, "-1000.00"),
    # mean (0.99 + 0.98) / 2 = 0.985: below 0.99, not below 0.95 → 25 %
    ("mean", DESIGN_GE, [0.99, 0.98], 0.985, 25, "-2500.00"),
    # min of 0.999, 0.96, 1 = 0.96: below 0.99 → 25 %
    ("min", DESIGN_GE, [0.999, 0.96, 1], 0.96, 25, "-2500.00"),
    # max of 100, 1000, 250 = 1000: above 300, on 1000 (not above) → 5 %
    ("max", DESIGN_LE, [100, 1000, 250], 1000, 5, "-500.00"),
    # max 1000.5 is above 1000 → 15 %
    ("max", DESIGN_LE, [1000.5], 1000.5, 15, "-1500.00"),
    # sum 4 + 4 + 3 = 11 > 10 → 5 %
    ("sum", spec("<=", 10, (10, 5)), [4, 4, 3], 11, 5, "-500.00"),
    # count 6 incidents > 5 → 15 %
    ("count", spec("<=", 2, (2, 5), (5, 15)), [1] * 6, 6, 15, "-1500.00"),
    # count 2 incidents, not above 2 → 0 %
    ("count", spec("<=", 2, (2, 5), (5, 15)), [1, 1], 2, 0, "0.00"),
    # p95 of 1..20: rank ⌈0.95 · 20⌉ = 19 → 19 > 18 → 5 %
    ("p95", spec("<=", 18, (18, 5)), list(range(1, 21)), 19, 5, "-500.00"),
    # p50 of 40, 10, 30, 20: sorted 10 20 30 40, rank ⌈0.5 · 4⌉ = 2 → 20, not above 20
    ("p50", spec("<=", 20, (20, 5)), [40, 10, 30, 20], 20, 0, "0.00"),
    # p90 of 1..11: rank ⌈0.9 · 11⌉ = ⌈9.9⌉ = 10 → 10 > 9 → 5 %
    ("p90", spec("<=", 9, (9, 5)), list(range(1, 12)), 10, 5, "-500.00"),
    # p99.9 of 1..1000: rank ⌈0.999 · 1000⌉ = 999 exactly (float maths says 1000) → 999
    ("p99.9", spec("<=", 999, (999, 5)), list(range(1, 1001)), 999, 0, "0.00"),
    # share of 1, 24, 25, 30 within 24 (≤ counts) = 2/4 = 0.5: below 0.75 → 10 %
    ("share_within", DESIGN_SHARE, [1, 24, 25, 30], 0.5, 10, "-1000.00"),
    # 9 of 10 within 24 = 0.9: not strictly below 0.9 → 0 %
    ("share_within", DESIGN_SHARE, [1] * 9 + [48], 0.9, 0, "0.00"),
    # 8 of 10 within 24 = 0.8: below 0.9, not below 0.75 → 5 %
    ("share_within", DESIGN_SHARE, [1] * 8 + [48] * 2, 0.8, 5, "-500.00"),
]


@pytest.mark.parametrize(("aggregation", "kpi", "values", "value", "tier", "amount"), KPI_CASES)
def test_kpi_value_and_credit(
    aggregation: str,
    kpi: dict[str, Any],
    values: list[float],
    value: float,
    tier: float,
    amount: str,
) -> None:
    terms = one_kpi_terms({"aggregation": aggregation, **kpi})
    statement = compute_statement(terms, PERIOD, observations("k", *values), [])
    credit = line(statement, "sla_credit", "k")
    assert credit.derivation.value == value
    assert credit.derivation.tier_percent == tier
    assert credit.derivation.events == len(values)
    assert credit.model_dump(mode="json")["amount"] == amount
    assert statement.total == Decimal("10000.00") + Decimal(amount)


def test_the_design_example_line_reads_as_a_sentence() -> None:
    # mean 0.995 < 0.999 → 10 % of 10000.00 = 1000.00
    statement = compute_statement(terms_with(), PERIOD, observations("availability", 0.995), [])
    credit = line(statement, "sla_credit", "availability")
    assert credit.description == (
        "availability mean of 0.995 is below the 0.999 target; "
        "tier 10% applies: credit of 1000.00 EUR."
    )
    assert credit.line_id == "acme-2026:2026-10:sla_credit:availability"


def test_credits_are_capped() -> None:
    # availability 0.9 < 0.95 → 50 %; latency 2000 > 1000 → 15 %; share 0 < 0.75 → 10 %.
    # 75 % > 50 % cap: lines -5000, -1500, -1000; cap gives back 7500 - 5000 = +2500.
    # No ratings: review line 0. Total 10000 - 7500 + 2500 = 5000.00.
    events = [
        *observations("availability", 0.9),
        *observations("latency_ms", 2000),
        *observations("resolution_hours", 48),
    ]
    statement = compute_statement(terms_with(), PERIOD, events, [])
    amounts = {(x.kind, x.kpi): x.model_dump(mode="json")["amount"] for x in statement.lines}
    assert amounts == {
        ("base_fee", None): "10000.00",
        ("sla_credit", "availability"): "-5000.00",
        ("sla_credit", "latency_ms"): "-1500.00",
        ("sla_credit", "resolution_hours"): "-1000.00",
        ("credit_cap", None): "2500.00",
        ("review_adjustment", None): "0.00",
    }
    assert line(statement, "credit_cap").derivation.percent == 25
    assert line(statement, "credit_cap").derivation.events == 3
    assert statement.total == Decimal("5000.00")


def test_bonus() -> None:
    # ratings 5, 5, 4: s = 14/3; bonus 5 · (14/3 - 3)/(5 - 3) = 25/6 % of 10000 = 416.666… → 416.67
    statement = compute_statement(terms_with(), PERIOD, compliant(), ratings(5, 5, 4))
    review = line(statement, "review_adjustment")
    assert review.amount == Decimal("416.67")
    assert review.derivation.reviews == 3
    assert review.description.startswith("Mean rating 4.66666666666667 from 3 reviewer(s)")
    assert statement.total == Decimal("10416.67")


def test_bonus_is_withheld_while_an_sla_credit_applies() -> None:
    # availability 0.995 → 10 % credit; ratings all 5 would earn +5 %, withheld → 9000.00
    events = [*compliant()[1:], *observations("availability", 0.995)]
    statement = compute_statement(terms_with(), PERIOD, events, ratings(5, 5, 5))
    review = line(statement, "review_adjustment")
    assert review.amount == 0
    assert review.derivation.reason == "sla_not_met"
    assert statement.total == Decimal("9000.00")


def test_bonus_despite_a_credit_when_the_terms_allow_it() -> None:
    # as above, but bonus_requires_sla_met false: -1000 + 500 → 9500.00
    rules = {**design_terms()["reviews"], "bonus_requires_sla_met": False}
    events = [*compliant()[1:], *observations("availability", 0.995)]
    statement = compute_statement(terms_with(reviews=rules), PERIOD, events, ratings(5, 5, 5))
    assert line(statement, "review_adjustment").amount == Decimal("500.00")
    assert statement.total == Decimal("9500.00")


def test_penalty() -> None:
    # ratings 1, 2, 3: s = 2; -5 · (3 - 2)/(3 - 1) = -2.5 % → -250.00
    statement = compute_statement(terms_with(), PERIOD, compliant(), ratings(1, 2, 3))
    assert line(statement, "review_adjustment").amount == Decimal("-250.00")
    assert line(statement, "review_adjustment").derivation.percent == -2.5


def test_too_few_reviews() -> None:
    # two reviewers < min_reviews 3 → 0, with the reason
    statement = compute_statement(terms_with(), PERIOD, compliant(), ratings(1, 1))
    review = line(statement, "review_adjustment")
    assert review.amount == 0
    assert review.derivation.reason == "too_few_reviews"
    assert "fewer than the 3 required" in review.description


def test_trimming() -> None:
    # ratings 1 5 5 5 5, trim 20 %: drop ⌊5 · 0.2⌋ = 1 from each end → 5 5 5, s = 5 → +5 % = 500
    # untrimmed s = 21/5 = 4.2 → 5 · 1.2/2 = 3 % = 300
    trimmed = terms_with(reviews={**design_terms()["reviews"], "trim_percent": 20})
    statement = compute_statement(trimmed, PERIOD, compliant(), ratings(1, 5, 5, 5, 5))
    assert line(statement, "review_adjustment").amount == Decimal("500.00")
    assert line(statement, "review_adjustment").derivation.trimmed == 1
    untrimmed = compute_statement(terms_with(), PERIOD, compliant(), ratings(1, 5, 5, 5, 5))
    assert line(untrimmed, "review_adjustment").amount == Decimal("300.00")
    # four ratings: ⌊4 · 0.2⌋ = 0 dropped; s = (1+5+5+5)/4 = 4 → 5 · 1/2 = 2.5 % = 250
    four = compute_statement(trimmed, PERIOD, compliant(), ratings(1, 5, 5, 5))
    assert line(four, "review_adjustment").amount == Decimal("250.00")


def test_latest_rating_per_reviewer_counts() -> None:
    # reviewer a: 1 on Oct 2, then 5 on Oct 20 → 5. With b 5 and c 5: s = 5 → +500.
    early, late = datetime(2026, 10, 2, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=UTC)
    events = [
        Rating("e2", "a", 5, late, 1),
        Rating("e1", "a", 1, early, 2),
        Rating("e3", "b", 5, early, 3),
        Rating("e4", "c", 5, early, 4),
    ]
    statement = compute_statement(terms_with(), PERIOD, compliant(), events)
    assert line(statement, "review_adjustment").amount == Decimal("500.00")
    assert line(statement, "review_adjustment").derivation.events == 3
    # same instant: bus order decides; a's 1 (seq 9) is later than a's 5 (seq 1).
    # s = (1 + 5 + 5)/3 = 11/3 → 5 · (2/3)/2 = 5/3 % of 10000 = 166.666… → 166.67
    tie = [*events[2:], Rating("e2", "a", 5, late, 1), Rating("e5", "a", 1, late, 9)]
    statement = compute_statement(terms_with(), PERIOD, compliant(), tie)
    assert line(statement, "review_adjustment").amount == Decimal("166.67")


def test_rounding_is_half_to_even() -> None:
    # 10.10 · 25 % = 2.525 → 2.52 half-to-even (half-up would give 2.53); total 7.58
    terms = one_kpi_terms({"aggregation": "mean", **DESIGN_GE}, base_fee="10.10")
    statement = compute_statement(terms, PERIOD, observations("k", 0.98), [])
    assert line(statement, "sla_credit", "k").model_dump(mode="json")["amount"] == "-2.52"
    assert statement.model_dump(mode="json")["total"] == "7.58"


def test_zero_decimal_currency() -> None:
    # 8001 JPY · 50 % = 4000.5 → 4000 half-to-even (half-up 4001); total 8001 - 4000 = 4001
    terms = one_kpi_terms({"aggregation": "mean", **DESIGN_GE}, currency="JPY", base_fee=8001)
    dumped = compute_statement(terms, PERIOD, observations("k", 0.9), []).model_dump(mode="json")
    assert [x["amount"] for x in dumped["lines"]] == ["8001", "-4000"]
    assert dumped["total"] == "4001"
    assert dumped["currency"] == "JPY"


def test_kpis_without_data() -> None:
    statement = compute_statement(terms_with(), PERIOD, [], [])
    for kpi in ["availability", "latency_ms", "resolution_hours"]:
        credit = line(statement, "sla_credit", kpi)
        assert credit.amount == 0
        assert credit.derivation.value is None
        assert credit.derivation.reason == "no_data"
        assert "no measurements" in credit.description
    assert statement.total == Decimal("10000.00")


def test_other_periods_unknown_kpis_and_duplicates_are_ignored() -> None:
    # Only availability-0 (1.0) counts: mean 1.0 → no credit, one event.
    events = [
        *observations("availability", 1.0),
        Observation("availability-0", "availability", 0.0, datetime(2026, 10, 3, tzinfo=UTC)),
        Observation("september", "availability", 0.0, datetime(2026, 9, 30, 23, tzinfo=UTC)),
        Observation("november", "availability", 0.0, datetime(2026, 11, 1, tzinfo=UTC)),
        Observation("cpu-1", "cpu", 0.0, datetime(2026, 10, 3, tzinfo=UTC)),
    ]
    credit = line(compute_statement(terms_with(), PERIOD, events, []), "sla_credit", "availability")
    assert (credit.amount, credit.derivation.events, credit.derivation.value) == (0, 1, 1.0)


def test_periods_follow_the_contract_timezone() -> None:
    # Berlin: 2026-09-30T22:30Z is Oct 1 00:30 local (counts); 2026-10-31T23:30Z is Nov 1.
    # mean of the one counted value 0.5 < 0.95 → 50 % (cap 50 %) → -5000.00
    events = [
        Observation("in", "availability", 0.5, datetime(2026, 9, 30, 22, 30, tzinfo=UTC)),
        Observation("out", "availability", 0.0, datetime(2026, 10, 31, 23, 30, tzinfo=UTC)),
    ]
    terms = terms_with(timezone="Europe/Berlin")
    credit = line(compute_statement(terms, PERIOD, events, []), "sla_credit", "availability")
    assert (credit.amount, credit.derivation.events) == (Decimal("-5000.00"), 1)


def test_events_digest_covers_the_events_the_line_used() -> None:
    events = observations("availability", 1.0, 0.999)
    credit = line(compute_statement(terms_with(), PERIOD, events, []), "sla_credit", "availability")
    expected = hashlib.sha256(b"availability-0\navailability-1").hexdigest()
    assert credit.derivation.events_digest == "sha256:" + expected
    base = line(compute_statement(terms_with(), PERIOD, events, []), "base_fee")
    assert base.derivation.events_digest == "sha256:" + hashlib.sha256(b"").hexdigest()


def test_terms_revision_between_two_periods() -> None:
    # v1 (10000.00) from 2026-10, v2 (12000.00) from 2026-12: November bills 10000, December 12000
    versions = [terms_with(), terms_with(base_fee="12000.00", effective_from="2026-12")]
    for period, version, total in [("2026-11", 1, "10000.00"), ("2026-12", 2, "12000.00")]:
        terms = terms_in_force(versions, period)
        number = version_in_force(versions, period)
        assert terms is not None and number == version
        statement = compute_statement(terms, period, [], [], terms_version=number)
        assert (statement.terms_version, statement.total) == (version, Decimal(total))


def test_statement_json_has_the_design_shape() -> None:
    statement = compute_statement(terms_with(), PERIOD, compliant(), ratings(4, 4, 4))
    data = json.loads(statement.model_dump_json())
    assert list(data) == [
        "contract_id",
        "period",
        "status",
        "terms_version",
        "currency",
        "total",
        "lines",
        "entries",
    ]
    assert (data["status"], data["terms_version"], data["entries"]) == ("provisional", 1, [])
    assert [x["kind"] for x in data["lines"]] == [
        "base_fee",
        "sla_credit",
        "sla_credit",
        "sla_credit",
        "review_adjustment",
    ]
    for item in data["lines"]:
        assert set(item) == {"line_id", "kind", "kpi", "amount", "description", "derivation"}
        assert isinstance(item["amount"], str)
        core = {"aggregation", "value", "target", "tier_percent", "events", "events_digest"}
        assert core <= set(item["derivation"])
    assert Statement.model_validate_json(statement.model_dump_json()) == statement


def test_a_statement_whose_total_is_not_the_sum_of_its_lines_is_refused() -> None:
    data = compute_statement(terms_with(), PERIOD, [], []).model_dump(mode="json")
    with pytest.raises(ValidationError):
        Statement.model_validate({**data, "total": "1.00"})
    with pytest.raises(ValidationError):
        Statement.model_validate({**data, "total": "10000.0"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value": float("nan")}, "finite"),
        ({"occurred_at": datetime(2026, 10, 1)}, "time zone"),
    ],
)
def test_observations_must_be_sound(kwargs: dict[str, Any], message: str) -> None:
    fields = {"event_id": "x", "kpi": "k", "value": 1.0, "occurred_at": datetime.now(UTC)}
    with pytest.raises(ValueError, match=message):
        Observation(**{**fields, **kwargs})


@pytest.mark.parametrize("score", [0, 6, True])
def test_ratings_must_be_one_to_five(score: int) -> None:
    with pytest.raises(ValueError, match="rating"):
        Rating("x", "r", score, datetime.now(UTC), 1)
