"""The review adjustment (docs/architecture.md, "The payment formula", step 4), a part of
`compute_statement`: which ratings count (the reviewer cap), the score, and the hold on a
period the reviews service flagged as a burst until an admin releases it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

from shared.core import money
from shared.core.aggregates import events_digest
from shared.core.decimals import shown
from shared.core.statement import Derivation, Line, Rating, Release, exact, line_id, number
from shared.core.terms import ReviewTerms, Terms

BURST = "burst"
HELD_BURST = "held_burst"


def review_source(envelope_source: str) -> str:
    """Where a review came in (`api`, `import`), from its event's `source` (`reviews:api`)."""
    return envelope_source.removeprefix("reviews:")


def admitted_reviewers(ratings: Iterable[Rating], max_reviewers: int | None) -> set[str]:
    """The reviewers who count: every one, or the first `max_reviewers` distinct ones in bus
    order (`seq`, then event id), so a flood of invented reviewers cannot crowd the period."""
    ordered = sorted(ratings, key=lambda r: (r.seq, r.event_id))
    admitted: set[str] = set()
    for rating in ordered:
        if max_reviewers is None or len(admitted) < max_reviewers:
            admitted.add(rating.reviewer)
    return admitted


def counted_ratings(ratings: Sequence[Rating], max_reviewers: int | None) -> list[Rating]:
    """The ratings that count: each admitted reviewer's latest one."""
    admitted = admitted_reviewers(ratings, max_reviewers)
    return latest_per_reviewer([r for r in ratings if r.reviewer in admitted])


def held(ratings: Iterable[Rating], releases: Iterable[Release]) -> bool:
    """A period is held when a rating flagged `burst` came after its last release (or it has
    none): the flag is the reviews service's, the release an admin's, both on the bus."""
    released = max((release.seq for release in releases), default=None)
    return any(
        BURST in rating.flags and (released is None or rating.seq > released) for rating in ratings
    )


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


def review_line(
    terms: Terms,
    period: str,
    ratings: Sequence[Rating],
    sla_breached: bool,
    releases: Sequence[Release] = (),
) -> Line:
    """The `review_adjustment` line from the period's ratings (already deduplicated) and the
    releases of the period: held at 0 while a burst flag is not released."""
    rules = terms.reviews
    if rules is None:
        raise ValueError("these terms have no reviews block")
    releases = [release for release in releases if release.period == period]
    counted = counted_ratings(ratings, rules.max_reviewers)
    line = _scored_line(terms, period, rules, counted, sla_breached)
    flags = sorted({flag for rating in ratings for flag in rating.flags})
    extras: dict[str, object] = {
        "review_sources": dict(sorted(Counter(r.source for r in counted).items())),
        "flags": tuple(flags) or None,
    }
    if held(ratings, releases):
        if line.amount:
            return _held(terms, line, extras)
    elif BURST in flags:  # released: the releases are among the events the line used
        used = [r.event_id for r in counted] + [release.event_id for release in releases]
        extras |= {"events": len(used), "events_digest": events_digest(used)}
    derivation = line.derivation.model_copy(update=extras)
    return line.model_copy(update={"derivation": derivation})


def _held(terms: Terms, line: Line, extras: dict[str, object]) -> Line:
    """The line held at 0, saying what it would pay once released."""
    would = f"{money.format_money(line.amount, terms.currency)} {terms.currency}"
    text = (
        f"{line.description} Held: the period is flagged as a burst of reviews from one "
        f"token; {would} applies once an admin releases it or a dispute settles it."
    )
    derivation = line.derivation.model_copy(
        update={
            **extras,
            "reason": HELD_BURST,
            "percent": 0.0,
            "held_amount": format(line.amount, "f"),
        }
    )
    zero = _amount(terms, Fraction(0))
    return line.model_copy(update={"amount": zero, "description": text, "derivation": derivation})


def _scored_line(
    terms: Terms, period: str, rules: ReviewTerms, counted: Sequence[Rating], sla_breached: bool
) -> Line:
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
