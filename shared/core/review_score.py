"""The review adjustment (docs/architecture.md, "The payment formula", step 4), a part of
`compute_statement`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from shared.core import money
from shared.core.aggregates import events_digest
from shared.core.decimals import shown
from shared.core.statement import Derivation, Line, Rating, exact, line_id, number
from shared.core.terms import ReviewTerms, Terms


def latest_per_reviewer(ratings: Sequence[Rating]) -> list[Rating]:
    """Each reviewer's latest rating by `occurred_at`, ties broken by bus order (`seq`).

    The event id breaks any remaining tie, so the choice never depends on input order.
    """
    latest: dict[str, Rating] = {}
    for rating in ratings:
        held = latest.get(rating.reviewer)
        if held is None or _recency(rating) > _recency(held):
            latest[rating.reviewer] = rating
    return list(latest.values())


def _recency(rating: Rating) -> tuple[datetime, int, str]:
    return rating.occurred_at, rating.seq, rating.event_id


def trimmed_mean(scores: Sequence[int], trim_percent: Decimal | float) -> tuple[Fraction, int]:
    """The mean after dropping ⌊n · trim_percent/100⌋ scores from each end, and that count."""
    ordered = sorted(scores)
    dropped = int(len(ordered) * exact(trim_percent) // 100)
    kept = ordered[dropped : len(ordered) - dropped]
    return Fraction(sum(kept), len(kept)), dropped


def adjustment_percent(score: Fraction, rules: ReviewTerms) -> Fraction:
    """The signed percent of the base fee that a mean rating `score` earns (bonus or penalty)."""
    neutral = exact(rules.neutral)
    if score > neutral:
        return exact(rules.max_bonus_percent) * (score - neutral) / (5 - neutral)
    if score < neutral:
        return -exact(rules.max_penalty_percent) * (neutral - score) / (neutral - 1)
    return Fraction(0)


def review_line(terms: Terms, period: str, ratings: Sequence[Rating], sla_breached: bool) -> Line:
    """The `review_adjustment` line from the period's ratings (already deduplicated)."""
    rules = terms.reviews
    if rules is None:
        raise ValueError("these terms have no reviews block")
    counted = latest_per_reviewer(ratings)
    used = [rating.event_id for rating in counted]
    count = len(counted)
    common = {
        "aggregation": "mean",
        "target": float(rules.neutral),
        "events": count,
        "events_digest": events_digest(used),
        "reviews": count,
    }
    if count < rules.min_reviews:
        text = (
            f"{count} reviewer(s) rated {period}, fewer than the {rules.min_reviews} required;"
            " no review adjustment."
        )
        return _line(terms, period, Fraction(0), text, {**common, "reason": "too_few_reviews"})
    score, dropped = trimmed_mean([rating.rating for rating in counted], rules.trim_percent)
    percent = adjustment_percent(score, rules)
    reason = None
    if percent > 0 and rules.bonus_requires_sla_met and sla_breached:
        percent, reason = Fraction(0), "sla_not_met"
    details = {**common, "value": shown(score), "trimmed": dropped, "reason": reason}
    summary = (
        f"Mean rating {number(score)} from {count} reviewer(s)"
        f"{f' ({dropped} dropped at each end)' if dropped else ''} against neutral "
        f"{number(rules.neutral)}"
    )
    amount = _amount(terms, percent)
    credited = f"{money.format_money(abs(amount), terms.currency)} {terms.currency}"
    if reason == "sla_not_met":
        text = f"{summary}; the bonus is withheld because an SLA credit applies."
    elif percent > 0:
        text = f"{summary}; bonus of {number(percent)}%: {credited}."
    elif percent < 0:
        text = f"{summary}; penalty of {number(-percent)}%: {credited}."
    else:
        text = f"{summary}; no adjustment."
    return _line(terms, period, percent, text, details)


def _amount(terms: Terms, percent: Fraction) -> Decimal:
    return money.to_minor_unit(Fraction(terms.base_fee) * percent / 100, terms.currency)


def _line(
    terms: Terms, period: str, percent: Fraction, text: str, details: dict[str, object]
) -> Line:
    return Line(
        line_id=line_id(terms.contract_id, period, "review_adjustment"),
        kind="review_adjustment",
        amount=_amount(terms, percent),
        description=text,
        derivation=Derivation.model_validate({**details, "percent": shown(percent)}),
    )
