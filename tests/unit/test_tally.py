"""A `Tally` tells a KPI's tier exactly as `kpi_credit` does from every value, at each step
of a period's measurements arriving one by one (what a closed period's late events do)."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.aggregates import KpiState
from shared.core.payment import kpi_credit
from shared.core.tally import Tally
from shared.core.terms import Kpi
from tests.unit.test_payment_properties import kpi_documents, values_near


@st.composite
def kpis_and_values(draw: st.DrawFn) -> tuple[Kpi, list[Decimal]]:
    document = draw(kpi_documents("k"))
    near = values_near({"kpis": [document]})
    values = draw(st.lists(near, max_size=40))
    return Kpi.model_validate_json(json.dumps(document)), values


@settings(max_examples=400, deadline=None)
@given(kpis_and_values())
def test_the_tally_gives_the_tier_of_every_value(case: tuple[Kpi, list[Decimal]]) -> None:
    kpi, values = case
    state, tally = KpiState(), Tally.of(kpi, [])
    assert tally.percent(kpi) == kpi_credit(kpi, state).percent
    for i, value in enumerate(values):
        state.add(f"e{i}", value)
        tally.add(value)
        assert tally.percent(kpi) == kpi_credit(kpi, state).percent, (i, value)
    assert Tally.from_document(json.loads(json.dumps(tally.document()))) == tally
    assert Tally.of(kpi, values) == tally


def test_a_percentile_tier_follows_the_counts_at_its_bound() -> None:
    kpi = Kpi.model_validate(
        {
            "name": "latency",
            "aggregation": "p95",
            "objective": "<=",
            "target": 300,
            "credits": [{"breach": 300, "percent": 5}, {"breach": 1000, "percent": 15}],
        }
    )
    tally = Tally.of(kpi, [Decimal(100)] * 19 + [Decimal(300)])
    assert tally.percent(kpi) == 0  # the 19th of 20 values is 100
    tally.add(Decimal(301))
    tally.add(Decimal(301))  # the 20th of 22 is 301 > 300
    assert tally.percent(kpi) == 5


@settings(max_examples=200, deadline=None)
@given(kpis_and_values(), st.integers(1, 7))
def test_adding_chunks_tallies_what_adding_one_at_a_time_does(
    case: tuple[Kpi, list[Decimal]], size: int
) -> None:
    kpi, values = case
    chunked = Tally.of(kpi, [])
    for start in range(0, len(values), size):
        chunked.add_all(values[start : start + size])
    assert chunked == Tally.of(kpi, values)
