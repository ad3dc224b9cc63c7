"""The payment formula (DESIGN.md "The payment formula", steps 1-5) as one pure function.

`compute_statement` is shared by the ledger and by every verifier, so an auditor recomputes
exactly what was billed. Money is exact (`Fraction`) until each line is rounded half-to-even
to the currency's minor unit; the total is the sum of the rounded lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from shared import money
from shared.aggregates import KpiState, events_digest
from shared.review_score import review_line
from shared.statement import (
    Derivation,
    Entry,
    Line,
    Observation,
    Rating,
    Statement,
    exact,
    line_id,
    number,
)
from shared.terms import CreditTier, Kpi, Terms, period_bounds

__all__ = [
    "Derivation",
    "Entry",
    "Line",
    "Observation",
    "Rating",
    "Statement",
    "applying_tier",
    "compute_statement",
    "events_digest",
    "exact",
    "line_id",
    "statement_from_states",
]


_Event = TypeVar("_Event", Observation, Rating)


@dataclass(frozen=True, slots=True)
class _KpiOutcome:
    line: Line
    percent: Fraction
    event_ids: frozenset[str]


def compute_statement(
    terms: Terms,
    period: str,
    measurements: Sequence[Observation],
    reviews: Sequence[Rating],
    *,
    terms_version: int = 1,
) -> Statement:
    """The provisional statement of `period` under `terms`, from the raw events.

    Events of other periods (in `terms.timezone`) and of KPIs the terms do not name are
    ignored; an event id seen twice counts once (the first occurrence).
    """
    start, end = period_bounds(period, terms.timezone)
    states = {kpi.name: KpiState() for kpi in terms.kpis}
    for observation in _first_of_each(measurements):
        state = states.get(observation.kpi)
        if state is not None and start <= observation.occurred_at < end:
            state.add(observation.event_id, observation.value)
    in_period = [r for r in _first_of_each(reviews) if start <= r.occurred_at < end]
    return statement_from_states(terms, period, states, in_period, terms_version=terms_version)


def statement_from_states(
    terms: Terms,
    period: str,
    states: Mapping[str, KpiState],
    reviews: Sequence[Rating],
    *,
    terms_version: int = 1,
) -> Statement:
    """The statement from per-KPI states already folded (the ledger keeps them running);
    `reviews` are the period's ratings. `compute_statement` is this over raw events."""
    empty = KpiState()
    outcomes = [_sla_credit(terms, period, kpi, states.get(kpi.name, empty)) for kpi in terms.kpis]
    lines = [_base_fee_line(terms, period), *(outcome.line for outcome in outcomes)]
    cap = _credit_cap_line(terms, period, outcomes)
    if cap is not None:
        lines.append(cap)
    if terms.reviews is not None:
        sla_breached = any(outcome.percent > 0 for outcome in outcomes)
        lines.append(review_line(terms, period, _first_of_each(reviews), sla_breached))
    return Statement(
        contract_id=terms.contract_id,
        period=period,
        terms_version=terms_version,
        currency=terms.currency,
        total=money.to_minor_unit(sum((line.amount for line in lines), Decimal(0)), terms.currency),
        lines=tuple(lines),
    )


def _first_of_each(events: Iterable[_Event]) -> list[_Event]:
    seen: set[str] = set()
    unique = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


def _base_fee_line(terms: Terms, period: str) -> Line:
    amount = money.to_minor_unit(terms.base_fee, terms.currency)
    text = money.format_money(amount, terms.currency)
    return Line(
        line_id=line_id(terms.contract_id, period, "base_fee"),
        kind="base_fee",
        amount=amount,
        description=f"Base fee for {period}: {text} {terms.currency}.",
        derivation=Derivation(base_fee=text),
    )


def applying_tier(kpi: Kpi, value: float) -> CreditTier | None:
    """The largest tier whose breach the value is strictly on the wrong side of, if any."""
    wrong_side = [
        tier
        for tier in kpi.credits
        if (value < tier.breach if kpi.objective == ">=" else value > tier.breach)
    ]
    return max(wrong_side, key=lambda tier: tier.percent, default=None)


def _sla_credit(terms: Terms, period: str, kpi: Kpi, state: KpiState) -> _KpiOutcome:
    value = state.value(kpi.aggregation, kpi.threshold)
    tier = None if value is None else applying_tier(kpi, value)
    percent = Fraction(0) if tier is None else exact(tier.percent)
    amount = money.to_minor_unit(-Fraction(terms.base_fee) * percent / 100, terms.currency)
    line = Line(
        line_id=line_id(terms.contract_id, period, "sla_credit", kpi.name),
        kind="sla_credit",
        kpi=kpi.name,
        amount=amount,
        description=_sla_text(terms, period, kpi, value, tier, amount),
        derivation=Derivation(
            aggregation=kpi.aggregation,
            value=value,
            target=kpi.target,
            tier_percent=float(percent),
            events=state.count,
            events_digest=state.digest(),
            objective=kpi.objective,
            threshold=kpi.threshold,
            breach=None if tier is None else tier.breach,
            reason="no_data" if value is None else None,
        ),
    )
    return _KpiOutcome(line, percent, state.event_ids)


def _sla_text(
    terms: Terms,
    period: str,
    kpi: Kpi,
    value: float | None,
    tier: CreditTier | None,
    amount: Decimal,
) -> str:
    if value is None:
        return f"{kpi.name}: no measurements in {period} (no_data); no credit."
    label = kpi.aggregation if kpi.threshold is None else f"share within {number(kpi.threshold)}"
    met = value >= kpi.target if kpi.objective == ">=" else value <= kpi.target
    side = "meets" if met else "is below" if kpi.objective == ">=" else "is above"
    text = f"{kpi.name} {label} of {number(value)} {side} the {number(kpi.target)} target; "
    if tier is None:
        return text + "no credit tier applies."
    credit = money.format_money(-amount, terms.currency)
    return text + f"tier {number(tier.percent)}% applies: credit of {credit} {terms.currency}."


def _credit_cap_line(terms: Terms, period: str, outcomes: Sequence[_KpiOutcome]) -> Line | None:
    """Give back what the KPI credits take past `max_credit_percent`.

    The rounded credits are held to the rounded cap, so they never exceed it by a cent.
    """
    total_percent = sum((outcome.percent for outcome in outcomes), Fraction(0))
    cap_percent = exact(terms.max_credit_percent)
    if total_percent <= cap_percent:
        return None
    allowed = money.to_minor_unit(Fraction(terms.base_fee) * cap_percent / 100, terms.currency)
    credited = -sum(Fraction(outcome.line.amount) for outcome in outcomes)
    amount = money.to_minor_unit(max(credited - Fraction(allowed), Fraction(0)), terms.currency)
    used = frozenset().union(*(o.event_ids for o in outcomes if o.percent > 0))
    back = money.format_money(amount, terms.currency)
    return Line(
        line_id=line_id(terms.contract_id, period, "credit_cap"),
        kind="credit_cap",
        amount=amount,
        description=(
            f"KPI credits add up to {number(total_percent)}% of the base fee, past the "
            f"{number(cap_percent)}% cap: {back} {terms.currency} is given back."
        ),
        derivation=Derivation(
            aggregation="sum",
            value=float(total_percent),
            target=float(cap_percent),
            events=len(used),
            events_digest=events_digest(used),
            percent=float(total_percent - cap_percent),
        ),
    )
