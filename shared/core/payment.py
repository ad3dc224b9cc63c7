"""The payment formula (docs/architecture.md, "The payment formula") as one pure function.

`compute_statement` is shared by the ledger and by every verifier, so an auditor recomputes
exactly what was billed. Money is exact (`Fraction`) until each line is rounded half-to-even
to the currency's minor unit; the total is the sum of the rounded lines.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

from shared.core import money
from shared.core.aggregates import KpiFigures, KpiState, events_digest, merged, sorted_digest
from shared.core.decimals import shown
from shared.core.periods import period_bounds
from shared.core.review_score import review_line
from shared.core.sources import PeriodFigures, PeriodStates
from shared.core.statement import (
    Derivation,
    Entry,
    Line,
    NotCounted,
    Observation,
    Rating,
    Release,
    Statement,
    exact,
    line_id,
    number,
)
from shared.core.terms import CreditTier, Kpi, Terms
from shared.core.ticket_kpis import TicketRecord, ticket_states

__all__ = [
    "Derivation",
    "Entry",
    "KpiCredit",
    "Line",
    "Observation",
    "PeriodFigures",
    "PeriodStates",
    "Rating",
    "Release",
    "Statement",
    "TicketRecord",
    "applying_tier",
    "compute_statement",
    "events_digest",
    "exact",
    "kpi_credit",
    "line_id",
    "no_data_tier",
    "reviews_line",
    "statement_from_states",
]


_Event = TypeVar("_Event", Observation, Rating)
_PERCENT = operator.attrgetter("percent")


@dataclass(frozen=True, slots=True)
class _KpiOutcome:
    line: Line
    percent: Fraction
    state: KpiFigures


def compute_statement(
    terms: Terms,
    period: str,
    measurements: Sequence[Observation],
    reviews: Sequence[Rating],
    *,
    terms_version: int = 1,
    releases: Sequence[Release] = (),
    tickets: Iterable[TicketRecord] = (),
    as_of: datetime | None = None,
) -> Statement:
    """The provisional statement of `period` under `terms`, from the raw events.

    Events of other periods (in `terms.timezone`) and of KPIs the terms do not name are
    ignored; an event id seen twice counts once (the first occurrence); a measurement from
    a party a KPI's `sources` do not name is shown as not counted. `releases` free a
    review line held for a burst (formula step 4). A ticket KPI is measured from
    `tickets` (docs/tickets.md), never from measurements; `as_of`, for a snapshot of a
    period still running, measures its running tickets up to then.
    """
    start, end = period_bounds(period, terms.timezone)
    states = PeriodStates(terms)
    for observation in _first_of_each(measurements):
        if start <= observation.occurred_at < end:
            states.add(observation.kpi, observation.event_id, observation.value, observation.party)
    in_period = [r for r in _first_of_each(reviews) if start <= r.occurred_at < end]
    return statement_from_states(
        terms,
        period,
        states,
        in_period,
        terms_version=terms_version,
        releases=releases,
        tickets=tickets,
        as_of=as_of,
    )


def statement_from_states(
    terms: Terms,
    period: str,
    states: PeriodStates | PeriodFigures | Mapping[str, KpiFigures],
    reviews: Sequence[Rating],
    *,
    terms_version: int = 1,
    releases: Sequence[Release] = (),
    tickets: Iterable[TicketRecord] = (),
    as_of: datetime | None = None,
) -> Statement:
    """The statement from per-KPI states already folded (the ledger keeps them running);
    `reviews` are the period's ratings, `tickets` the contract's ticket events up to the
    period's end at least. `compute_statement` is this over raw events. A plain mapping of
    KPI states counts every measurement in it."""
    folded = states if isinstance(states, PeriodStates | PeriodFigures) else None
    measured = states if not isinstance(states, PeriodStates | PeriodFigures) else states.counted
    counted = {**measured, **ticket_states(terms, period, tickets, as_of)}
    empty = KpiState()
    outcomes = [
        _sla_credit(terms, period, kpi, counted.get(kpi.name, empty), _aside(folded, kpi))
        for kpi in terms.kpis
    ]
    lines = [_base_fee_line(terms, period), *(outcome.line for outcome in outcomes)]
    cap = _credit_cap_line(terms, period, outcomes)
    if cap is not None:
        lines.append(cap)
    if terms.reviews is not None:
        sla_breached = any(outcome.percent > 0 for outcome in outcomes)
        lines.append(reviews_line(terms, period, reviews, sla_breached, releases))
    return Statement(
        contract_id=terms.contract_id,
        period=period,
        terms_version=terms_version,
        currency=terms.currency,
        total=money.to_minor_unit(sum((line.amount for line in lines), Decimal(0)), terms.currency),
        lines=tuple(lines),
    )


def reviews_line(
    terms: Terms,
    period: str,
    reviews: Sequence[Rating],
    sla_breached: bool,
    releases: Sequence[Release] = (),
) -> Line:
    """The review line of a statement whose KPI credits breach (`sla_breached`) or not: the
    period's ratings, each counted once, and releases (formula step 4)."""
    return review_line(terms, period, _first_of_each(reviews), sla_breached, releases)


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


def applying_tier(kpi: Kpi, value: Fraction) -> CreditTier | None:
    """The largest tier whose breach the value is strictly on the wrong side of, if any."""
    wrong_side = [
        tier
        for tier in kpi.credits
        if (value < exact(tier.breach) if kpi.objective == ">=" else value > exact(tier.breach))
    ]
    return max(wrong_side, key=_PERCENT, default=None)


def no_data_tier(kpi: Kpi) -> CreditTier | None:
    """What too few measurements earn: the largest tier under "breach", else none."""
    return max(kpi.credits, key=_PERCENT, default=None) if kpi.no_data == "breach" else None


@dataclass(frozen=True, slots=True)
class KpiCredit:
    """What one KPI earns in a period: its exact value (None without measurements), the
    tier that applies, and whether too few measurements arrived for the value to count."""

    value: Fraction | None
    tier: CreditTier | None
    no_data: bool

    @property
    def percent(self) -> Fraction:
        return Fraction(0) if self.tier is None else exact(self.tier.percent)


def kpi_credit(kpi: Kpi, state: KpiFigures) -> KpiCredit:
    """The KPI's credit from its folded measurements (payment formula steps 1 and 2): with
    fewer than `min_count` (or none), its `no_data` rule decides, and "breach" applies
    its largest tier, so withholding data never pays."""
    value = state.value(kpi.aggregation, kpi.threshold)
    if value is None or state.count < (kpi.min_count or 1):
        return KpiCredit(value, no_data_tier(kpi), no_data=True)
    return KpiCredit(value, applying_tier(kpi, value), no_data=False)


def _aside(states: PeriodStates | PeriodFigures | None, kpi: Kpi) -> NotCounted | None:
    """What a KPI with `sources` kept but did not count (None for a KPI without sources)."""
    if not kpi.sources:
        return None
    state = states.not_counted.get(kpi.name) if states is not None else None
    if state is None:
        return NotCounted(events=0, events_digest=events_digest(()), parties={})
    parties = states.parties[kpi.name] if states is not None else {}
    return NotCounted(events=state.count, events_digest=state.digest(), parties=dict(parties))


def _sla_credit(
    terms: Terms, period: str, kpi: Kpi, state: KpiFigures, aside: NotCounted | None = None
) -> _KpiOutcome:
    credit = kpi_credit(kpi, state)
    percent = credit.percent
    amount = money.to_minor_unit(-Fraction(terms.base_fee) * percent / 100, terms.currency)
    line = Line(
        line_id=line_id(terms.contract_id, period, "sla_credit", kpi.name),
        kind="sla_credit",
        kpi=kpi.name,
        amount=amount,
        description=_sla_text(terms, period, kpi, state.count, credit, amount) + _aside_text(aside),
        derivation=Derivation(
            aggregation=kpi.aggregation,
            value=None if credit.value is None else shown(credit.value),
            target=float(kpi.target),
            tier_percent=float(percent),
            events=state.count,
            events_digest=state.digest(),
            objective=kpi.objective,
            threshold=None if kpi.threshold is None else float(kpi.threshold),
            breach=None if credit.tier is None else float(credit.tier.breach),
            reason="no_data" if credit.no_data else None,
            sources=kpi.sources,
            not_counted=aside,
            tickets=None if kpi.ticket_metric is None else state.count,
        ),
    )
    return _KpiOutcome(line, percent, state)


def _sla_text(
    terms: Terms, period: str, kpi: Kpi, count: int, credit: KpiCredit, amount: Decimal
) -> str:
    label = kpi.aggregation if kpi.threshold is None else f"share within {number(kpi.threshold)}"
    tier = credit.tier
    applies = (
        ""
        if tier is None
        else f"tier {number(tier.percent)}% applies: credit of "
        f"{money.format_money(-amount, terms.currency)} {terms.currency}."
    )
    what = "measurement" if kpi.ticket_metric is None else "ticket"
    if credit.no_data:
        if credit.value is None:
            text = f"{kpi.name}: no {what}s in {period} (no_data"
        else:
            text = (
                f"{kpi.name}: {count} {what}(s) in {period} ({label} "
                f"{number(credit.value)}), fewer than the {kpi.min_count} required (no_data"
            )
        if kpi.no_data != "breach":
            return text + "); no credit."
        return text + ": breach); " + (applies or "no credit tier to apply.")
    value = credit.value
    assert value is not None
    target = exact(kpi.target)
    met = value >= target if kpi.objective == ">=" else value <= target
    side = "meets" if met else "is below" if kpi.objective == ">=" else "is above"
    text = f"{kpi.name} {label} of {number(value)} {side} the {number(kpi.target)} target; "
    return text + (applies or "no credit tier applies.")


def _aside_text(aside: NotCounted | None) -> str:
    if aside is None or not aside.events:
        return ""
    parties = ", ".join(f"{n} {party}" for party, n in sorted(aside.parties.items()))
    return f" Not counted (not among the KPI's sources): {parties}."


def _credit_cap_line(terms: Terms, period: str, outcomes: Sequence[_KpiOutcome]) -> Line | None:
    """Give back what the rounded KPI credits take past the rounded cap, so that they and
    this line come to exactly -round_half_even(base_fee · max_credit_percent / 100); no
    line when they are within it already."""
    allowed = money.to_minor_unit(
        Fraction(terms.base_fee) * exact(terms.max_credit_percent) / 100, terms.currency
    )
    credited = -sum((outcome.line.amount for outcome in outcomes), Decimal(0))
    if credited <= allowed:
        return None
    amount = money.to_minor_unit(credited - allowed, terms.currency)
    total_percent = sum((outcome.percent for outcome in outcomes), Fraction(0))
    cap_percent = exact(terms.max_credit_percent)
    used, digest = sorted_digest(merged(o.state.sorted_ids() for o in outcomes if o.percent > 0))
    currency = terms.currency
    return Line(
        line_id=line_id(terms.contract_id, period, "credit_cap"),
        kind="credit_cap",
        amount=amount,
        description=(
            f"KPI credits add up to {number(total_percent)}% of the base fee "
            f"({money.format_money(credited, currency)} {currency}), past the "
            f"{number(cap_percent)}% cap ({money.format_money(allowed, currency)} {currency}):"
            f" {money.format_money(amount, currency)} {currency} is given back."
        ),
        derivation=Derivation(
            aggregation="sum",
            value=shown(total_percent),
            target=float(cap_percent),
            events=used,
            events_digest=digest,
            percent=shown(max(total_percent - cap_percent, Fraction(0))),
        ),
    )
