"""Properties of the payment formula that hold for any terms and any events."""

import math
import random
import statistics
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import money
from shared.aggregates import KpiState
from shared.payment import Observation, Rating, Statement, compute_statement
from shared.terms import Terms

PERIOD = "2026-10"
Events = tuple[list[Observation], list[Rating]]
KPI_NAMES = ["a", "b", "c"]
AGGREGATIONS = ["mean", "min", "max", "sum", "count", "share_within", "p50", "p95", "p99.9"]


@st.composite
def kpis(draw: st.DrawFn, name: str) -> dict[str, Any]:
    aggregation = draw(st.sampled_from(AGGREGATIONS))
    share = aggregation == "share_within"
    objective = draw(st.sampled_from([">=", "<="]))
    bound = st.floats(0, 1) if share else st.floats(-100, 100)
    breaches = sorted(draw(st.sets(bound, max_size=3)), reverse=objective == ">=")
    percents = sorted(draw(st.sets(st.integers(0, 100), min_size=len(breaches))))
    kpi = {
        "name": name,
        "aggregation": aggregation,
        "objective": objective,
        "target": draw(bound),
        "credits": [{"breach": b, "percent": p} for b, p in zip(breaches, percents, strict=False)],
    }
    return {**kpi, "threshold": draw(st.floats(-100, 100))} if share else kpi


@st.composite
def terms(draw: st.DrawFn) -> Terms:
    currency = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    places = money.minor_digits(currency)
    fee = draw(st.decimals(0, 10**7, places=places, allow_nan=False, allow_infinity=False))
    names = draw(st.lists(st.sampled_from(KPI_NAMES), unique=True, max_size=3))
    reviews = {
        "min_reviews": draw(st.integers(1, 4)),
        "neutral": draw(st.floats(1.5, 4.5)),
        "max_bonus_percent": draw(st.integers(0, 20)),
        "max_penalty_percent": draw(st.integers(0, 20)),
        "trim_percent": draw(st.sampled_from([0, 10, 25, 49])),
        "bonus_requires_sla_met": draw(st.booleans()),
    }
    return Terms.model_validate(
        {
            "contract_id": "prop-test",
            "provider": "P",
            "customer": "C",
            "currency": currency,
            "base_fee": str(fee),
            "effective_from": "2026-01",
            "timezone": draw(st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Kiritimati"])),
            "kpis": [draw(kpis(name)) for name in names],
            "reviews": draw(st.none() | st.just(reviews)),
            "max_credit_percent": draw(st.integers(0, 100)),
        }
    )


instants = st.datetimes(datetime(2026, 9, 29), datetime(2026, 11, 2)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
values = st.floats(-100, 100) | st.sampled_from([0.0, 0.5, 1.0, 24.0])


@st.composite
def events(draw: st.DrawFn) -> Events:
    count = draw(st.integers(0, 40))
    measured = [
        Observation(
            f"m{i}", draw(st.sampled_from([*KPI_NAMES, "other"])), draw(values), draw(instants)
        )
        for i in range(count)
    ]
    rated = [
        Rating(f"r{i}", draw(st.sampled_from("uvwxyz")), draw(st.integers(1, 5)), draw(instants), i)
        for i in range(draw(st.integers(0, 12)))
    ]
    return measured, rated


def credits_of(statement: Statement) -> Decimal:
    kinds = {"sla_credit", "credit_cap"}
    return -sum((x.amount for x in statement.lines if x.kind in kinds), Decimal(0))


@given(terms(), events())
def test_total_is_the_sum_of_the_lines(terms: Terms, data: Events) -> None:
    statement = compute_statement(terms, PERIOD, *data)
    assert statement.total == sum((x.amount for x in statement.lines), Decimal(0))
    assert statement.lines[0].kind == "base_fee"
    assert len({x.line_id for x in statement.lines}) == len(statement.lines)


@given(terms(), events(), st.randoms(use_true_random=False))
def test_event_order_never_changes_the_result(
    terms: Terms, data: Events, rnd: random.Random
) -> None:
    measured, rated = data
    shuffled_m, shuffled_r = list(measured), list(rated)
    rnd.shuffle(shuffled_m)
    rnd.shuffle(shuffled_r)
    expected = compute_statement(terms, PERIOD, measured, rated)
    assert compute_statement(terms, PERIOD, shuffled_m, shuffled_r) == expected


@given(terms(), events())
def test_credits_never_exceed_the_cap(terms: Terms, data: Events) -> None:
    statement = compute_statement(terms, PERIOD, *data)
    cap = Fraction(terms.base_fee) * Fraction(repr(terms.max_credit_percent)) / 100
    assert 0 <= credits_of(statement) <= money.to_minor_unit(cap, terms.currency)


@given(terms(), events())
def test_duplicate_event_ids_never_change_the_result(terms: Terms, data: Events) -> None:
    measured, rated = data
    expected = compute_statement(terms, PERIOD, measured, rated)
    assert compute_statement(terms, PERIOD, measured + measured, rated + rated[::-1]) == expected


@given(
    st.lists(st.floats(0, 1), max_size=30),
    st.floats(0, 1),
    st.lists(st.floats(0.5, 1), min_size=1, max_size=3, unique=True),
)
def test_a_compliant_measurement_never_raises_a_mean_credit(
    earlier: list[float], target: float, breaches: list[float]
) -> None:
    tiers = [{"breach": b, "percent": 10 * (i + 1)} for i, b in enumerate(sorted(breaches)[::-1])]
    kpi = {
        "name": "a",
        "aggregation": "mean",
        "objective": ">=",
        "target": target,
        "credits": tiers,
    }
    contract = Terms.model_validate(
        {
            "contract_id": "prop-test",
            "provider": "P",
            "customer": "C",
            "currency": "EUR",
            "base_fee": "1000.00",
            "effective_from": "2026-01",
            "kpis": [kpi],
        }
    )
    at = datetime(2026, 10, 10, tzinfo=UTC)
    measured = [Observation(f"m{i}", "a", v, at) for i, v in enumerate(earlier)]
    good = Observation("good", "a", max(target, *breaches), at)
    before = compute_statement(contract, PERIOD, measured, [])
    after = compute_statement(contract, PERIOD, [*measured, good], [])
    assert credits_of(after) <= credits_of(before)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from(KPI_NAMES), values), max_size=60),
    st.sampled_from(AGGREGATIONS),
    st.floats(-100, 100),
    st.randoms(use_true_random=False),
    st.integers(1, 7),
)
def test_incremental_aggregates_match_the_statement(
    pairs: list[tuple[str, float]],
    aggregation: str,
    threshold: float,
    rnd: random.Random,
    batch: int,
) -> None:
    share = aggregation == "share_within"
    kpi_list = [
        {
            "name": name,
            "aggregation": aggregation,
            "objective": ">=",
            "target": 0,
            "credits": [],
            **({"threshold": threshold} if share else {}),
        }
        for name in KPI_NAMES
    ]
    contract = Terms.model_validate(
        {
            "contract_id": "prop-test",
            "provider": "P",
            "customer": "C",
            "currency": "EUR",
            "base_fee": "1.00",
            "effective_from": "2026-01",
            "kpis": kpi_list,
        }
    )
    at = datetime(2026, 10, 10, tzinfo=UTC)
    measured = [Observation(f"m{i}", kpi, v, at) for i, (kpi, v) in enumerate(pairs)]
    statement = compute_statement(contract, PERIOD, measured, [])
    arrival = measured + measured[: len(measured) // 2]
    rnd.shuffle(arrival)
    states = {name: KpiState() for name in KPI_NAMES}
    for start in range(0, len(arrival), batch):
        for event in arrival[start : start + batch]:
            states[event.kpi].add(event.event_id, event.value)
    for credit in statement.lines[1:]:
        assert credit.kpi is not None
        state = KpiState.from_items(states[credit.kpi].items())
        expected = state.value(aggregation, threshold if share else None)
        assert credit.derivation.value == expected
        assert credit.derivation.events_digest == state.digest()


@given(st.lists(values, min_size=1, max_size=50), st.floats(-100, 100))
def test_aggregates_match_a_naive_reference(sample: list[float], threshold: float) -> None:
    state = KpiState.from_items((f"m{i}", v) for i, v in enumerate(sample))
    ordered = sorted(sample)
    n = len(sample)
    assert state.value("mean") == statistics.mean(sample)
    assert state.value("sum") == math.fsum(sample)
    assert state.value("count") == n
    assert (state.value("min"), state.value("max")) == (ordered[0], ordered[-1])
    assert state.value("share_within", threshold) == sum(v <= threshold for v in sample) / n
    for nn in ["50", "95", "99.9"]:
        rank = math.ceil(Decimal(nn) * n / 100)
        assert state.value(f"p{nn}") == ordered[rank - 1]
