"""A period's review summary and the burst detector, as pure functions of the stored reviews.

Which reviews count is decided exactly as the payment formula decides it
(`shared.core.review_score`): each reviewer's latest review by `occurred_at`, ties broken by
order; the trimmed mean is the one the contract's `trim_percent` gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction

from services.reviews.models import (
    COMMENT_MIN_REVIEWERS,
    DIMENSIONS,
    Comment,
    DimensionSummary,
    Flag,
    ReviewSummary,
)
from shared.core.review_score import BURST, admitted_reviewers, counted_ratings, trimmed_mean
from shared.core.statement import Rating
from shared.core.terms import ReviewTerms


@dataclass(frozen=True, slots=True)
class StoredReview:
    """One review as the read model keeps it (no personal data: a pseudonym, scores, and
    `submitter`, a keyed hash of the token that sent it, None when not known)."""

    review_id: str
    pseudonym: str
    rating: int
    occurred_at: datetime
    seq: int
    dimensions: Mapping[str, int] = field(default_factory=dict)
    submitter: str | None = None
    source: str = "api"
    has_comment: bool = False
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BurstRule:
    """Flag a period whose counted reviews number at least `min_reviews` and of which one
    token sent more than `max_share`."""

    min_reviews: int = 5
    max_share: float = 0.5


def _ratings(reviews: Sequence[StoredReview]) -> list[Rating]:
    by_id = {review.review_id: review for review in reviews}
    return [
        Rating(r.review_id, r.pseudonym, r.rating, r.occurred_at, r.seq) for r in by_id.values()
    ]


def counted(
    reviews: Sequence[StoredReview], max_reviewers: int | None = None
) -> list[StoredReview]:
    """The reviews that count, in store order: each admitted reviewer's latest one (the
    payment formula's choice, `shared.core.review_score.counted_ratings`)."""
    by_id = {review.review_id: review for review in reviews}
    kept = {rating.event_id for rating in counted_ratings(_ratings(reviews), max_reviewers)}
    return sorted((by_id[i] for i in kept), key=lambda r: r.seq)


def over_cap(
    reviews: Sequence[StoredReview], newcomers: Sequence[str], max_reviewers: int | None
) -> list[int]:
    """The indices of `newcomers` (pseudonyms, in order) that would be a reviewer past
    `max_reviewers`: a reviewer already admitted may always replace their review."""
    if max_reviewers is None:
        return []
    admitted = admitted_reviewers(_ratings(reviews), max_reviewers)
    refused = []
    for index, alias in enumerate(newcomers):
        if alias in admitted:
            continue
        if len(admitted) < max_reviewers:
            admitted.add(alias)
        else:
            refused.append(index)
    return refused


def burst_flags(reviews: Sequence[StoredReview], rule: BurstRule) -> list[Flag]:
    """A `burst` flag when one token sent an unusual share of the counted reviews."""
    latest = counted(reviews)
    senders = Counter(r.submitter for r in latest if r.submitter is not None)
    if len(latest) < rule.min_reviews or not senders:
        return []
    top = max(senders.values())
    share = top / len(latest)
    if share <= rule.max_share:
        return []
    detail = (
        f"one token sent {top} of the {len(latest)} counted reviews ({share:.0%}; "
        f"more than {rule.max_share:.0%} is flagged)"
    )
    return [Flag(kind=BURST, share=round(share, 4), detail=detail)]


def summarise(
    contract_id: str,
    period: str,
    reviews: Sequence[StoredReview],
    rules: ReviewTerms | None,
    burst: BurstRule,
    comments: Sequence[Comment] | None,
) -> ReviewSummary:
    """The summary; `comments` are the counted reviews' decrypted comments for a party
    (None for anyone else), shown only from `COMMENT_MIN_REVIEWERS` counted reviewers on."""
    latest = counted(reviews, None if rules is None else rules.max_reviewers)
    scores = [r.rating for r in latest]
    trim_percent = rules.trim_percent if rules is not None else 0.0
    mean = trimmed = None
    dropped = 0
    if scores:
        mean = float(Fraction(sum(scores), len(scores)))
        exact_trimmed, dropped = trimmed_mean(scores, trim_percent)
        trimmed = float(exact_trimmed)
    hidden = None
    if comments is None:
        hidden = "parties_only"
    elif len(latest) < COMMENT_MIN_REVIEWERS:
        hidden = "fewer_than_3_reviewers"
    return ReviewSummary(
        contract_id=contract_id,
        period=period,
        count=len(latest),
        submissions=len(reviews),
        replaced=len(reviews) - len(latest),
        distribution={str(n): scores.count(n) for n in range(1, 6)},
        mean=mean,
        trimmed_mean=trimmed,
        trim_percent=trim_percent,
        trimmed=dropped,
        min_reviews=None if rules is None else rules.min_reviews,
        max_reviewers=None if rules is None else rules.max_reviewers,
        counts_for_payment=rules is not None and len(latest) >= rules.min_reviews,
        dimensions=_dimensions(latest),
        sources=dict(sorted(Counter(r.source for r in latest).items())),
        flags=burst_flags(reviews, burst),
        comments=None if hidden or comments is None else _unordered(comments),
        comments_hidden=hidden,
    )


def _dimensions(latest: Sequence[StoredReview]) -> dict[str, DimensionSummary]:
    out = {}
    for name in DIMENSIONS:
        values = [r.dimensions[name] for r in latest if name in r.dimensions]
        mean = float(Fraction(sum(values), len(values))) if values else None
        out[name] = DimensionSummary(mean=mean, count=len(values))
    return out


def _unordered(comments: Sequence[Comment]) -> list[Comment]:
    """Sorted by content, so the order says nothing about who wrote what when."""
    return sorted(comments, key=lambda c: (c.rating, c.comment))
