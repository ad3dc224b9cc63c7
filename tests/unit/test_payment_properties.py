"""Properties of the payment formula that hold for any terms and any events.

The main one: for random terms (every aggregation, tiers, caps, `no_data`, `min_count`,
reviews, time zones) and random events (values on, next to and between tier boundaries,
empty periods), the statement equals an independent recomputation written here in plain
`Fraction` arithmetic, both as `compute_statement` makes it from measurements read off
their JSON and as the ledger's running state makes it, batch by batch.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bus import Record
from shared.core.aggregates import KpiState
from shared.core.payment import (
    Observation,
    Rating,
    Statement,
    compute_statement,
    statement_from_states,
)
from shared.core.terms import Terms
from shared.events import TOPIC_MEASUREMENTS, MeasurementRecorded
from shared.measured import DeliveredMeasurement, decode_measurements

PERIOD = "2026-10"
KPI_NAMES = ["a", "b", "c"]
AGGREGATIONS = ["mean", "min", "max", "sum", "count", "share_within", "p50", "p95", "p99.9"]
MINOR_DIGITS = {"EUR": 2, "JPY": 0, "KWD": 3}
ZONES = ["UTC", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns"]
STEPS = [Decimal("1e-18"), Decimal("1e-6"), Decimal("0.5")]
LARGEST = st.decimals(-(10**15), 10**15, places=18)
"""What ingest takes: up to 1e15 with 18 places, 33 digits (the default context keeps 28)."""


def decimals(low: int, high: int, places: int = 6) -> st.SearchStrategy[Decimal]:
    """Decimals in [low, high] with up to `places` places (terms numbers: <= 15 digits)."""
    return st.integers(0, places).flatmap(
        lambda p: st.decimals(low, high, places=p, allow_nan=False, allow_infinity=False)
    )


def number(value: Decimal) -> Any:
    """A terms number as JSON writes it (<= 15 digits: a double's repr spells it)."""
    return int(value) if value == value.to_integral_value() else float(value)


@st.composite
def kpi_documents(draw: st.DrawFn, name: str) -> dict[str, Any]:
    aggregation = draw(st.sampled_from(AGGREGATIONS))
    share = aggregation == "share_within"
    objective = draw(st.sampled_from([">=", "<="]))
    bound = decimals(0, 1) if share else decimals(-100, 100)
    breaches = sorted(draw(st.sets(bound, max_size=3)), reverse=objective == ">=")
    percents = sorted(draw(st.sets(decimals(0, 100, 3), min_size=len(breaches))))
    kpi: dict[str, Any] = {
        "name": name,
        "aggregation": aggregation,
        "objective": objective,
        "target": number(draw(bound)),
        "credits": [
            {"breach": number(b), "percent": number(p)}
            for b, p in zip(breaches, percents, strict=False)
        ],
    }
    if share:
        kpi["threshold"] = number(draw(decimals(-100, 100)))
    if draw(st.booleans()):
        kpi["no_data"] = draw(st.sampled_from(["no_credit", "breach"]))
    if draw(st.booleans()):
        kpi["min_count"] = draw(st.integers(1, 6))
    return kpi


@st.composite
def terms_documents(draw: st.DrawFn) -> dict[str, Any]:
    currency = draw(st.sampled_from(sorted(MINOR_DIGITS)))
    places = MINOR_DIGITS[currency]
    fee = draw(st.decimals(0, 10**7, places=places, allow_nan=False, allow_infinity=False))
    names = draw(st.lists(st.sampled_from(KPI_NAMES), unique=True, max_size=3))
    reviews = {
        "min_reviews": draw(st.integers(1, 4)),
        "neutral": number(draw(decimals(2, 4, 2))),
        "max_bonus_percent": number(draw(decimals(0, 20, 2))),
        "max_penalty_percent": number(draw(decimals(0, 20, 2))),
        "trim_percent": draw(st.sampled_from([0, 10, 25, 49.5])),
        "bonus_requires_sla_met": draw(st.booleans()),
    }
    return {
        "contract_id": "prop-test",
        "provider": "P",
        "customer": "C",
        "currency": currency,
        "base_fee": str(fee),
        "effective_from": "2026-01",
        "timezone": draw(st.sampled_from(ZONES)),
        "kpis": [draw(kpi_documents(name)) for name in names],
        "reviews": draw(st.none() | st.just(reviews)),
        "max_credit_percent": number(draw(decimals(0, 100, 3))),
    }


instants = st.datetimes(datetime(2026, 9, 29), datetime(2026, 11, 2)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)


def pivots(document: dict[str, Any]) -> list[Decimal]:
    """The numbers a KPI value is compared with: values on and next to them matter most."""
    found = [Decimal(0), Decimal(1)]
    for kpi in document["kpis"]:
        found += [Decimal(repr(kpi["target"])), Decimal(repr(kpi.get("threshold", 0)))]
        found += [Decimal(repr(tier["breach"])) for tier in kpi["credits"]]
    return found


@st.composite
def values_near(draw: st.DrawFn, document: dict[str, Any]) -> Decimal:
    pivot = draw(st.sampled_from(pivots(document)))
    step = draw(st.sampled_from(STEPS))
    return pivot + step * draw(st.integers(-2, 2))


@dataclass(frozen=True)
class Scenario:
    document: dict[str, Any]
    terms: Terms
    measured: list[tuple[str, str, str, datetime]]  # (event_id, kpi, value as JSON, at)
    rated: list[Rating]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    document = draw(terms_documents())
    terms = Terms.model_validate_json(json.dumps(document))
    value = values_near(document) | decimals(-1000, 1000, 18) | LARGEST
    measured = [
        (
            str(uuid.UUID(int=i)),
            draw(st.sampled_from([*KPI_NAMES, "other"])),
            str(draw(value)),
            draw(instants),
        )
        for i in range(draw(st.integers(0, 30)))
    ]
    rated = [
        Rating(f"r{i}", draw(st.sampled_from("uvwxyz")), draw(st.integers(1, 5)), draw(instants), i)
        for i in range(draw(st.integers(0, 10)))
    ]
    return Scenario(document, terms, measured, rated)


def read_off_the_bus(measured: Sequence[tuple[str, str, str, datetime]]) -> list[Observation]:
    """Each measurement as ingest publishes it, its value the JSON number spelled exactly,
    read back by the ledger's own reader."""
    records = []
    for offset, (event_id, kpi, value, at) in enumerate(measured):
        stamp = at.isoformat().replace("+00:00", "Z")
        raw = (
            f'{{"event_id":"{event_id}","type":"{MeasurementRecorded.TYPE}",'
            f'"schema_version":1,"contract_id":"prop-test","occurred_at":"{stamp}",'
            f'"recorded_at":"{stamp}","source":"agent:prop",'
            f'"data":{{"kpi":"{kpi}","value":{value},"labels":{{}},"measurement_id":null}}}}'
        )
        headers = {"type": MeasurementRecorded.TYPE}
        records.append(Record(TOPIC_MEASUREMENTS, 0, offset, "prop-test", raw.encode(), headers))
    decoded = decode_measurements(records)
    assert decoded.failures == []
    found = []
    for m in decoded.delivered:
        assert isinstance(m, DeliveredMeasurement)
        found.append(Observation(m.event_id, m.kpi, m.number, m.occurred_at))
    return found


# --- the reference: deliberately simple, in Fraction arithmetic --------------------------


def exact(x: Any) -> Fraction:
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def rounded(amount: Fraction, currency: str) -> Fraction:
    scale = 10 ** MINOR_DIGITS[currency]
    return Fraction(round(amount * scale), scale)  # round() of a Fraction is half-to-even


def in_period(at: datetime, zone: str) -> bool:
    local = at.astimezone(ZoneInfo(zone))
    return f"{local.year:04d}-{local.month:02d}" == PERIOD


def kpi_value(kpi: dict[str, Any], values: list[Fraction]) -> Fraction:
    n, ordered = len(values), sorted(values)
    aggregation = kpi["aggregation"]
    if aggregation == "mean":
        return sum(values, Fraction(0)) / n
    if aggregation == "sum":
        return sum(values, Fraction(0))
    if aggregation == "count":
        return Fraction(n)
    if aggregation == "min":
        return ordered[0]
    if aggregation == "max":
        return ordered[-1]
    if aggregation == "share_within":
        return Fraction(sum(1 for v in values if v <= exact(kpi["threshold"])), n)
    rank = max(1, math.ceil(Fraction(aggregation[1:]) * n / 100))
    return ordered[rank - 1]


@dataclass
class Expected:
    amounts: dict[tuple[str, str | None], Fraction]
    values: dict[str, Fraction | None]
    counts: dict[str, int]
    no_data: dict[str, bool]


def reference(
    document: dict[str, Any], measured: list[Observation], rated: list[Rating]
) -> Expected:
    zone, currency = document["timezone"], document["currency"]
    base = Fraction(document["base_fee"])
    amounts: dict[tuple[str, str | None], Fraction] = {("base_fee", None): base}
    values, counts, no_data = {}, {}, {}
    percents = []
    for kpi in document["kpis"]:
        name = kpi["name"]
        seen = {}
        for o in measured:
            if o.kpi == name and in_period(o.occurred_at, zone) and o.event_id not in seen:
                seen[o.event_id] = Fraction(o.value)
        got = list(seen.values())
        values[name] = kpi_value(kpi, got) if got else None
        counts[name] = len(got)
        tiers = [(exact(t["breach"]), exact(t["percent"])) for t in kpi["credits"]]
        no_data[name] = len(got) < kpi.get("min_count", 1)
        if no_data[name]:
            breach_rule = kpi.get("no_data") == "breach"
            percent = max((p for _, p in tiers), default=Fraction(0)) if breach_rule else 0
        else:
            value = values[name]
            assert value is not None
            wrong = [p for b, p in tiers if (value < b if kpi["objective"] == ">=" else value > b)]
            percent = max(wrong, default=Fraction(0))
        percents.append(percent)
        amounts[("sla_credit", name)] = rounded(-base * percent / 100, currency)
    credited = -sum((a for (kind, _), a in amounts.items() if kind == "sla_credit"), Fraction(0))
    allowed = rounded(base * exact(document["max_credit_percent"]) / 100, currency)
    if credited > allowed:
        amounts[("credit_cap", None)] = credited - allowed
    rules = document["reviews"]
    if rules is not None:
        latest: dict[str, Rating] = {}
        for r in sorted(rated, key=lambda r: (r.occurred_at, r.seq, r.event_id)):
            if in_period(r.occurred_at, zone):
                latest[r.reviewer] = r
        scores = sorted(r.rating for r in latest.values())
        percent = Fraction(0)
        if len(scores) >= rules["min_reviews"]:
            drop = math.floor(len(scores) * exact(rules["trim_percent"]) / 100)
            kept = scores[drop : len(scores) - drop]
            s, neutral = Fraction(sum(kept), len(kept)), exact(rules["neutral"])
            if s > neutral:
                percent = exact(rules["max_bonus_percent"]) * (s - neutral) / (5 - neutral)
                if rules["bonus_requires_sla_met"] and any(p > 0 for p in percents):
                    percent = Fraction(0)
            elif s < neutral:
                percent = -exact(rules["max_penalty_percent"]) * (neutral - s) / (neutral - 1)
        amounts[("review_adjustment", None)] = rounded(base * percent / 100, currency)
    return Expected(amounts, values, counts, no_data)


def shown(value: Fraction) -> float:
    with localcontext(prec=15, rounding=ROUND_HALF_EVEN):
        return float(Decimal(value.numerator) / Decimal(value.denominator))


def check(statement: Statement, expected: Expected) -> None:
    found = {(x.kind, x.kpi): Fraction(x.amount) for x in statement.lines}
    assert found == expected.amounts
    assert Fraction(statement.total) == sum(expected.amounts.values(), Fraction(0))
    for line in statement.lines:
        if line.kind == "sla_credit":
            assert line.kpi is not None
            value = expected.values[line.kpi]
            assert line.derivation.value == (None if value is None else shown(value))
            assert line.derivation.events == expected.counts[line.kpi]
            assert (line.derivation.reason == "no_data") is expected.no_data[line.kpi]


# --- the properties --------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_statements_agree_with_an_independent_exact_recomputation(case: Scenario) -> None:
    measured = read_off_the_bus(case.measured)
    statement = compute_statement(case.terms, PERIOD, measured, case.rated)
    check(statement, reference(case.document, measured, case.rated))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False), st.integers(1, 12))
def test_the_ledgers_running_state_agrees_batch_by_batch(
    case: Scenario, rnd: random.Random, batch: int
) -> None:
    """As the ledger folds: measurements of the period arrive in any order, some twice, a
    batch at a time, with a statement computed from the running state after each batch."""
    measured = read_off_the_bus(case.measured)
    zone = case.document["timezone"]
    arrival = [o for o in measured if in_period(o.occurred_at, zone)]
    arrival += arrival[: len(arrival) // 3]
    rnd.shuffle(arrival)
    ratings = [r for r in case.rated if in_period(r.occurred_at, zone)]
    states = {kpi.name: KpiState() for kpi in case.terms.kpis}
    so_far: list[Observation] = []
    for start in range(0, max(len(arrival), 1), batch):
        for o in arrival[start : start + batch]:
            if o.kpi in states:
                states[o.kpi].add(o.event_id, o.value)
            so_far.append(o)
        running = statement_from_states(case.terms, PERIOD, states, ratings)
        assert running == compute_statement(case.terms, PERIOD, so_far, case.rated)
    check(running, reference(case.document, measured, case.rated))


@given(scenarios(), st.randoms(use_true_random=False))
def test_event_order_and_repeats_never_change_the_result(
    case: Scenario, rnd: random.Random
) -> None:
    measured = read_off_the_bus(case.measured)
    expected = compute_statement(case.terms, PERIOD, measured, case.rated)
    shuffled_m, shuffled_r = measured + measured, case.rated + case.rated[::-1]
    rnd.shuffle(shuffled_m)
    rnd.shuffle(shuffled_r)
    assert compute_statement(case.terms, PERIOD, shuffled_m, shuffled_r) == expected


@given(scenarios())
def test_credits_never_pass_the_rounded_cap_and_the_cap_only_gives_back(case: Scenario) -> None:
    statement = compute_statement(case.terms, PERIOD, read_off_the_bus(case.measured), [])
    kinds = {"sla_credit", "credit_cap"}
    credits = -sum((x.amount for x in statement.lines if x.kind in kinds), Decimal(0))
    base, cap = Fraction(case.terms.base_fee), Fraction(case.terms.max_credit_percent)
    assert 0 <= credits <= rounded(base * cap / 100, case.terms.currency)
    assert all(x.amount > 0 for x in statement.lines if x.kind == "credit_cap")
    assert statement.total == sum((x.amount for x in statement.lines), Decimal(0))
    assert len({x.line_id for x in statement.lines}) == len(statement.lines)


@given(
    st.lists(decimals(0, 1, 18), max_size=30),
    decimals(0, 1),
    st.lists(decimals(0, 1), min_size=1, max_size=3, unique=True),
)
def test_a_compliant_measurement_never_raises_a_mean_credit(
    earlier: list[Decimal], target: Decimal, breaches: list[Decimal]
) -> None:
    tiers = [
        {"breach": number(b), "percent": 10 * (i + 1)} for i, b in enumerate(sorted(breaches)[::-1])
    ]
    kpi = {
        "name": "a",
        "aggregation": "mean",
        "objective": ">=",
        "target": number(target),
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

    def credits(statement: Statement) -> Decimal:
        return -sum((x.amount for x in statement.lines if x.kind == "sla_credit"), Decimal(0))

    before = compute_statement(contract, PERIOD, measured, [])
    after = compute_statement(contract, PERIOD, [*measured, good], [])
    assert credits(after) <= credits(before)


@given(st.lists(decimals(-1000, 1000, 18) | LARGEST, min_size=1, max_size=50), LARGEST)
def test_aggregates_match_a_naive_exact_reference(
    sample: list[Decimal], threshold: Decimal
) -> None:
    state = KpiState.from_items((f"m{i}", v) for i, v in enumerate(sample))
    exact_sample = [Fraction(v) for v in sample]
    ordered, n = sorted(exact_sample), len(sample)
    assert state.value("mean") == sum(exact_sample, Fraction(0)) / n
    assert state.value("sum") == sum(exact_sample, Fraction(0))
    assert state.value("count") == n
    assert (state.value("min"), state.value("max")) == (ordered[0], ordered[-1])
    within = sum(1 for v in exact_sample if v <= Fraction(threshold))
    assert state.value("share_within", threshold) == Fraction(within, n)
    for nn in ["50", "95", "99.9"]:
        rank = max(1, math.ceil(Fraction(nn) * n / 100))
        assert state.value(f"p{nn}") == ordered[rank - 1]
