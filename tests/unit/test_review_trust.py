"""Reviews that cannot be bought (shared/core/review_score.py): the reviewer cap, the hold on
a burst and its release, the count per source; and the summary's comment threshold.

Unless a case says otherwise: the documented terms, base fee 10000.00 EUR, period 2026-10,
every KPI met, so a mean rating of 5 earns the full +5 % = +500.00.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from services.reviews.models import Comment
from services.reviews.summary import BurstRule, StoredReview, over_cap, summarise
from shared.core.aggregates import events_digest
from shared.core.payment import Line, Rating, Release, compute_statement
from shared.core.review_score import admitted_reviewers, held
from shared.core.terms import ReviewTerms, Terms
from tests.unit.terms_examples import MID_OCTOBER, compliant, design_terms, terms_with

PERIOD = "2026-10"


def capped(max_reviewers: int | None) -> Terms:
    return terms_with(reviews={**design_terms()["reviews"], "max_reviewers": max_reviewers})


def rating(seq: int, who: str, score: int = 5, **extra: Any) -> Rating:
    return Rating(f"e{seq}", who, score, MID_OCTOBER, seq, **extra)


def review_line(terms: Terms, ratings: list[Rating], releases: Sequence[Release] = ()) -> Line:
    statement = compute_statement(terms, PERIOD, compliant(), ratings, releases=releases)
    return next(x for x in statement.lines if x.kind == "review_adjustment")


def test_only_the_first_max_reviewers_in_bus_order_count() -> None:
    # cap 3: a, b, c count (5, 5, 5 → +500.00); d and e, later on the bus, rate 1 and do not
    ratings = [rating(1, "a"), rating(2, "b"), rating(3, "c"), rating(4, "d", 1), rating(5, "e", 1)]
    line = review_line(capped(3), ratings)
    assert line.amount == Decimal("500.00")
    assert line.derivation.events == 3
    assert line.derivation.events_digest == events_digest(["e1", "e2", "e3"])
    # no cap: all five, s = 17/5 = 3.4 → 5 · 0.4/2 = 1 % = +100.00
    assert review_line(capped(None), ratings).amount == Decimal("100.00")


def test_a_counted_reviewer_may_replace_their_review_past_the_cap() -> None:
    # a replaces 5 with 1 after d arrived: a, b, c still count → s = 11/3 → +166.67
    later = MID_OCTOBER + timedelta(hours=1)
    ratings = [rating(1, "a"), rating(2, "b"), rating(3, "c"), rating(4, "d", 1)]
    ratings.append(Rating("e5", "a", 1, later, 5))
    assert admitted_reviewers(ratings, 3) == {"a", "b", "c"}
    assert review_line(capped(3), ratings).amount == Decimal("166.67")


def test_the_door_refuses_only_new_reviewers_past_the_cap() -> None:
    at = datetime(2026, 10, 1, tzinfo=UTC)
    stored = [StoredReview(f"r{i}", who, 5, at, i) for i, who in enumerate("ab", start=1)]
    assert over_cap(stored, ["a", "c", "b", "d", "c"], 3) == [3]
    assert over_cap(stored, ["x"] * 3, None) == []


@pytest.mark.parametrize("bad", [0, -1, 100_001, True, 2.5, "3"])
def test_max_reviewers_is_bounded(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        capped(bad)  # type: ignore[arg-type]
    assert any(e["loc"][:2] == ("reviews", "max_reviewers") for e in caught.value.errors())


def test_a_burst_holds_the_line_at_zero_until_released() -> None:
    ratings = [rating(i, f"r{i}", flags=("burst",) if i > 1 else ()) for i in range(1, 6)]
    held_line = review_line(terms_with(), ratings)
    assert held_line.amount == Decimal("0.00")
    assert held_line.derivation.reason == "held_burst"
    assert held_line.derivation.held_amount == "500.00"
    assert held_line.derivation.flags == ("burst",)
    assert "500.00 EUR applies once an admin releases it" in held_line.description
    release = Release("rel-1", PERIOD, 9)
    released = review_line(terms_with(), ratings, [release])
    assert released.amount == Decimal("500.00") and released.derivation.reason is None
    # the release is among the events the line used, so a release changes the digest
    assert released.derivation.events_digest == events_digest(
        [f"e{i}" for i in range(1, 6)] + ["rel-1"]
    )
    assert (released.derivation.events, released.derivation.reviews) == (6, 5)


def test_a_burst_after_the_release_holds_again_and_other_periods_releases_do_not_count() -> None:
    ratings = [rating(i, f"r{i}", flags=("burst",)) for i in range(1, 4)]
    assert held(ratings, [Release("x", PERIOD, 2)])
    assert not held(ratings, [Release("x", PERIOD, 2), Release("y", PERIOD, 3)])
    september = review_line(terms_with(), ratings, [Release("z", "2026-09", 9)])
    assert september.derivation.reason == "held_burst"


def test_a_held_penalty_is_held_too_and_a_zero_line_keeps_its_reason() -> None:
    ones = [rating(i, f"r{i}", 1, flags=("burst",)) for i in range(1, 4)]
    penalty = review_line(terms_with(), ones)
    assert penalty.amount == Decimal("0.00") and penalty.derivation.held_amount == "-500.00"
    two = review_line(terms_with(), ones[:2])
    assert two.derivation.reason == "too_few_reviews" and two.derivation.held_amount is None


def test_the_line_counts_its_reviews_per_source() -> None:
    ratings = [rating(1, "a", source="api"), rating(2, "b", source="import")]
    ratings += [rating(3, "c", source="api"), rating(4, "d", source="import")]
    line = review_line(capped(3), ratings)
    assert line.derivation.review_sources == {"api": 2, "import": 1}
    dumped = line.model_dump(mode="json")["derivation"]
    assert dumped["review_sources"] == {"api": 2, "import": 1}
    assert "held_amount" not in dumped


def test_comments_wait_for_three_counted_reviewers() -> None:
    rules = ReviewTerms(max_bonus_percent=5, max_penalty_percent=5, max_reviewers=2)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    reviews = [StoredReview(f"r{i}", who, 4, at, i) for i, who in enumerate("abc", start=1)]
    words = [Comment(rating=4, comment="fine")]
    capped_summary = summarise("c-1", PERIOD, reviews, rules, BurstRule(10**9), words)
    assert capped_summary.count == 2
    assert capped_summary.comments is None
    assert capped_summary.comments_hidden == "fewer_than_3_reviewers"
    free = rules.model_copy(update={"max_reviewers": None})
    open_summary = summarise("c-1", PERIOD, reviews, free, BurstRule(10**9), words)
    assert open_summary.count == 3 and open_summary.comments == words
