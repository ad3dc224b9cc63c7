"""The payment formula in exact decimals: values mean the decimals their JSON spells, every
comparison with a breach or threshold is exact, and only money lines are rounded.

At each tier boundary, a value exactly on the breach earns no tier and one step past it
(10^-18, the finest a measurement can be written in) earns it. Base fee 1000.00 EUR.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import rfc8785

from shared.core.aggregates import KpiState
from shared.core.payment import Line, Statement, compute_statement, statement_from_states
from shared.core.terms import Terms
from tests.unit.terms_examples import MID_OCTOBER, observations, ratings

PERIOD = "2026-10"
STEP = Decimal("1e-18")


def terms(*kpis: dict[str, Any], **changes: Any) -> Terms:
    return Terms.model_validate(
        {
            "contract_id": "exact-co",
            "provider": "P",
            "customer": "C",
            "currency": "EUR",
            "base_fee": "1000.00",
            "effective_from": "2026-01",
            "kpis": list(kpis),
            **changes,
        }
    )


def kpi(aggregation: str, objective: str, breach: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": "k",
        "aggregation": aggregation,
        "objective": objective,
        "target": breach,
        "credits": [{"breach": breach, "percent": 10}],
        **extra,
    }


def credit(statement: Statement, name: str = "k") -> Line:
    return next(x for x in statement.lines if x.kind == "sla_credit" and x.kpi == name)


def statement_of(contract: Terms, *values: Any) -> Statement:
    return compute_statement(contract, PERIOD, observations("k", *map(Decimal, values)), [])


def d(text: str) -> Decimal:
    return Decimal(text)


# (aggregation, objective, breach, values exactly on the breach, values one step past it)
BOUNDARIES = [
    ("mean", ">=", 0.8, ["1", "0.7", "0.7"], ["1", "0.7", str(d("0.7") - STEP)]),
    ("mean", "<=", 0.3, ["0.1", "0.2", "0.6"], ["0.1", "0.2", str(d("0.6") + STEP)]),
    ("sum", "<=", 0.3, ["0.1", "0.2"], ["0.1", str(d("0.2") + STEP)]),
    ("sum", ">=", 0.3, ["0.1", "0.2"], ["0.1", str(d("0.2") - STEP)]),
    ("min", ">=", 0.1, ["0.3", "0.1"], ["0.3", str(d("0.1") - STEP)]),
    ("min", "<=", 0.3, ["0.5", "0.3"], ["0.5", str(d("0.3") + STEP)]),
    ("max", "<=", 0.3, ["0.1", "0.3"], ["0.1", str(d("0.3") + STEP)]),
    ("max", ">=", 0.3, ["0.1", "0.3"], ["0.1", str(d("0.3") - STEP)]),
    # p95 of 20 values: rank ⌈0.95 · 20⌉ = 19
    ("p95", "<=", 0.3, ["0.01"] * 18 + ["0.3", "5"], ["0.01"] * 18 + [str(d("0.3") + STEP), "5"]),
    ("p50", ">=", 0.3, ["0.3", "0.1", "0.9", "0.4"], [str(d("0.3") - STEP), "0.1", "0.9", "0.4"]),
    ("count", ">=", 3, ["0.1", "0.1", "0.1"], ["0.1", "0.1"]),
    ("count", "<=", 2, ["0.1", "0.1"], ["0.1", "0.1", "0.1"]),
]


@pytest.mark.parametrize(
    ("aggregation", "objective", "breach", "on", "past"),
    BOUNDARIES,
    ids=[f"{b[0]} {b[1]}" for b in BOUNDARIES],
)
def test_a_value_on_the_breach_earns_nothing_one_step_past_earns_the_tier(
    aggregation: str, objective: str, breach: float, on: list[str], past: list[str]
) -> None:
    contract = terms(kpi(aggregation, objective, breach))
    at_breach = statement_of(contract, *on)
    assert credit(at_breach).amount == Decimal("0.00")
    assert credit(at_breach).derivation.value == breach
    assert at_breach.total == Decimal("1000.00")
    beyond = statement_of(contract, *past)
    assert credit(beyond).amount == Decimal("-100.00")
    assert credit(beyond).derivation.breach == breach
    assert beyond.total == Decimal("900.00")


@pytest.mark.parametrize(
    ("values", "share", "amount"),
    [
        (["0.3", "0.4"], 0.5, "0.00"),  # 0.3 is within a 0.3 threshold (≤): share 1/2
        ([str(d("0.3") + STEP), "0.4"], 0, "-100.00"),  # a step past it is not
        (["0.30000000000000004", "0.1"], 0.5, "0.00"),  # a float's noise means what it says
        (["0.1", "0.2", "0.3", "0.4"], 0.75, "0.00"),  # 3 of 4: exactly on a 0.75 breach
        (["0.1", "0.2", "0.4", "0.4"], 0.5, "-100.00"),
    ],
)
def test_share_within_counts_values_up_to_the_threshold_exactly(
    values: list[str], share: float, amount: str
) -> None:
    contract = terms(kpi("share_within", ">=", 0.5 if len(values) == 2 else 0.75, threshold=0.3))
    line = credit(statement_of(contract, *values))
    assert (line.derivation.value, line.amount) == (share, Decimal(amount))


def test_the_reported_sum_of_0_1_and_0_2_is_0_3() -> None:
    """Issue 20: 0.1 + 0.2 against a `<=` tier at 0.3 took a -100.00 credit from float noise."""
    statement = statement_of(terms(kpi("sum", "<=", 0.3)), "0.1", "0.2")
    assert statement.total == Decimal("1000.00")
    assert credit(statement).derivation.value == 0.3
    assert (
        "sum of 0.3 meets the 0.3 target; no credit tier applies." in credit(statement).description
    )


def test_the_reported_mean_of_1_0_7_0_7_is_0_8() -> None:
    statement = statement_of(terms(kpi("mean", ">=", 0.8)), "1", "0.7", "0.7")
    assert statement.total == Decimal("1000.00")
    assert credit(statement).derivation.value == 0.8


def test_a_float_written_out_means_the_decimal_it_spells() -> None:
    """A measurement published as 0.30000000000000004 is just above 0.3, and says so."""
    statement = statement_of(terms(kpi("max", "<=", 0.3)), "0.30000000000000004")
    assert credit(statement).amount == Decimal("-100.00")
    assert credit(statement).derivation.value == 0.3  # shown to 15 significant digits


def test_the_derivation_shows_15_significant_digits_that_a_double_holds() -> None:
    line = credit(statement_of(terms(kpi("mean", ">=", 0.5)), "1", "1", "0"))
    assert line.derivation.value == 0.666666666666667
    assert "mean of 0.666666666666667 meets" in line.description
    document = json.loads(rfc8785.dumps(line.model_dump(mode="json")))
    assert document["derivation"]["value"] == 0.666666666666667


@pytest.mark.parametrize("aggregation", ["sum", "mean", "max", "min"])
def test_huge_legacy_values_never_overflow(aggregation: str) -> None:
    """Issue 19: two values of 1.7e308 on a `sum` KPI raised OverflowError in float()."""
    contract = terms(kpi(aggregation, "<=", 1e308))
    statement = statement_of(contract, "1.7e308", "1.7e308")
    line = credit(statement)
    expected = {"sum": "-100.00", "mean": "-100.00", "max": "-100.00", "min": "-100.00"}
    assert line.amount == Decimal(expected[aggregation])
    shown = 1.79769313486231e308 if aggregation == "sum" else 1.7e308
    assert line.derivation.value == shown
    assert "3.4e+308" in line.description if aggregation == "sum" else True
    rfc8785.dumps(statement.model_dump(mode="json"))  # a double holds every number shown


def test_tiny_legacy_values_are_exact_too() -> None:
    statement = statement_of(terms(kpi("sum", ">=", 0)), "5e-324", "-5e-324", "1e-1074")
    assert credit(statement).amount == Decimal("0.00")
    assert credit(statement).derivation.value == 0.0  # 1e-1074 shown: below any double


# --- no_data and min_count -------------------------------------------------------------

TIERS = [{"breach": 0.99, "percent": 10}, {"breach": 0.9, "percent": 30}]


def availability(**extra: Any) -> dict[str, Any]:
    return {
        "name": "k",
        "aggregation": "mean",
        "objective": ">=",
        "target": 0.99,
        "credits": TIERS,
        **extra,
    }


def test_no_measurements_earn_no_credit_by_default() -> None:
    line = credit(statement_of(terms(availability())))
    assert (line.amount, line.derivation.reason, line.derivation.events) == (
        Decimal("0.00"),
        "no_data",
        0,
    )
    assert line.derivation.value is None
    assert line.description == "k: no measurements in 2026-10 (no_data); no credit."


def test_no_measurements_under_breach_apply_the_largest_tier() -> None:
    line = credit(statement_of(terms(availability(no_data="breach"))))
    assert (line.amount, line.derivation.tier_percent, line.derivation.breach) == (
        Decimal("-300.00"),
        30,
        0.9,
    )
    assert line.derivation.reason == "no_data"
    assert line.description == (
        "k: no measurements in 2026-10 (no_data: breach); tier 30% applies: credit of 300.00 EUR."
    )


@pytest.mark.parametrize(
    ("rule", "values", "amount", "reason"),
    [
        ("no_credit", ["0.5", "0.5"], "0.00", "no_data"),  # 2 < 3: the low mean is not counted
        ("breach", ["1", "1"], "-300.00", "no_data"),  # 2 < 3: a perfect mean does not save it
        ("breach", ["1", "1", "1"], "0.00", None),  # 3 arrived: the value decides
        ("no_credit", ["0.95", "1", "0.96"], "-100.00", None),
    ],
)
def test_min_count_hands_too_few_measurements_to_the_no_data_rule(
    rule: str, values: list[str], amount: str, reason: str | None
) -> None:
    line = credit(statement_of(terms(availability(no_data=rule, min_count=3)), *values))
    assert (line.amount, line.derivation.reason) == (Decimal(amount), reason)
    assert line.derivation.events == len(values)  # what arrived is still shown
    assert line.derivation.value == float(sum(map(Decimal, values)) / len(values))


def test_the_no_data_line_says_what_arrived() -> None:
    line = credit(statement_of(terms(availability(min_count=3)), "0.5", "0.75"))
    assert line.description == (
        "k: 2 measurement(s) in 2026-10 (mean 0.625), fewer than the 3 required (no_data);"
        " no credit."
    )


def test_a_breach_for_no_data_counts_as_a_breach_for_the_review_bonus() -> None:
    contract = terms(
        availability(no_data="breach"),
        reviews={"min_reviews": 1, "max_bonus_percent": 5, "max_penalty_percent": 5},
    )
    statement = compute_statement(contract, PERIOD, [], ratings(5))
    review = next(x for x in statement.lines if x.kind == "review_adjustment")
    assert (review.amount, review.derivation.reason) == (Decimal("0.00"), "sla_not_met")


def test_no_data_is_the_same_on_the_ledgers_running_state() -> None:
    contract = terms(availability(no_data="breach", min_count=2))
    state = KpiState()
    state.add("k-0", Decimal("1"))
    running = statement_from_states(contract, PERIOD, {"k": state}, [])
    assert running == statement_of(contract, "1")
    assert credit(running).amount == Decimal("-300.00")


# --- the cap ---------------------------------------------------------------------------


def capped(base_fee: str, cap: Any, *percents: Any, currency: str = "EUR") -> Statement:
    """One `max` KPI per percent, each breached (value 1 above breach 0)."""
    kpis = [
        {
            "name": f"k{i}",
            "aggregation": "max",
            "objective": "<=",
            "target": 0,
            "credits": [{"breach": 0, "percent": percent}],
        }
        for i, percent in enumerate(percents)
    ]
    contract = terms(*kpis, base_fee=base_fee, currency=currency, max_credit_percent=cap)
    events = [o for i in range(len(percents)) for o in observations(f"k{i}", 1, at=MID_OCTOBER)]
    return compute_statement(contract, PERIOD, events, [])


def credits(statement: Statement) -> Decimal:
    kinds = {"sla_credit", "credit_cap"}
    return sum((x.amount for x in statement.lines if x.kind in kinds), Decimal(0))


def cap_line(statement: Statement) -> Line | None:
    return next((x for x in statement.lines if x.kind == "credit_cap"), None)


@pytest.mark.parametrize(
    ("base_fee", "cap", "percents", "capped_to", "given_back"),
    [
        # 3 x 33.335 % of 0.10 = 0.033335 → 0.03 each (0.09); cap 50 % = 0.05: back 0.04
        ("0.10", 50, [33.335, 33.335, 33.335], "-0.05", "0.04"),
        # 60 % + 60 % of 999.99: 599.994 → 599.99 twice (1199.98); cap 100 % = 999.99
        ("999.99", 100, [60, 60], "-999.99", "199.99"),
        # percents on the cap, but rounding passes it: 3 x 16.665 % of 1.00 = 0.16665 → 0.17
        # each (0.51); cap 49.995 % = 0.49995 → 0.50
        ("1.00", 49.995, [16.665, 16.665, 16.665], "-0.50", "0.01"),
        # percents within the cap, but rounding each line up passes it by a cent:
        # 3 x 30 % of 0.05 = 0.015 → 0.02 each (0.06); cap 99 % = 0.0495 → 0.05
        ("0.05", 99, [30, 30, 30], "-0.05", "0.01"),
        # percents past the cap, but the rounded credits are not: 40 % + 70 % of 0.01 =
        # 0.004 → 0.00 and 0.007 → 0.01: 0.01, on the cap of 0.01, so no line
        ("0.01", 100, [40, 70], None, None),
        # half-even on the cap itself: 12.5 % of 0.20 = 0.025 → 0.02
        ("0.20", 12.5, [50], "-0.02", "0.08"),
    ],
)
def test_the_cap_line_brings_the_rounded_credits_exactly_to_the_rounded_cap(
    base_fee: str,
    cap: float,
    percents: list[float],
    capped_to: str | None,
    given_back: str | None,
) -> None:
    statement = capped(base_fee, cap, *percents)
    line = cap_line(statement)
    if capped_to is None:
        assert line is None
        return
    assert line is not None and given_back is not None
    assert credits(statement) == Decimal(capped_to)
    assert line.amount == Decimal(given_back)
    assert line.amount > 0


def test_the_cap_in_yen_and_dinar() -> None:
    # JPY: 60 % + 60 % of 1001 = 600.6 → 601 each (1202); cap 100 % = 1001 → back 201
    yen = capped("1001", 100, 60, 60, currency="JPY")
    assert credits(yen) == Decimal("-1001")
    assert [x.amount for x in yen.lines if x.kind == "credit_cap"] == [Decimal("201")]
    # KWD: 3 x 33.3335 % of 1.000 = 0.333335 → 0.333 each (0.999); cap 90 % = 0.900
    dinar = capped("1.000", 90, 33.3335, 33.3335, 33.3335, currency="KWD")
    assert credits(dinar) == Decimal("-0.900")
