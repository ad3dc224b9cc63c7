"""Summary maths and the burst detector (services/reviews/summary.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from services.reviews.models import Comment
from services.reviews.summary import BurstRule, StoredReview, counted, summarise
from shared.core.review_score import trimmed_mean
from shared.core.terms import ReviewTerms

T0 = datetime(2026, 10, 1, tzinfo=UTC)
RULES = ReviewTerms(max_bonus_percent=5, max_penalty_percent=5, trim_percent=20, min_reviews=3)
OFF = BurstRule(min_reviews=10**9)
ROOT = Path(__file__).resolve().parents[2]


def stored(seq: int, who: str, rating: int, hours: int = 0, **extra: object) -> StoredReview:
    return StoredReview(
        review_id=f"r{seq}",
        pseudonym=who,
        rating=rating,
        occurred_at=T0 + timedelta(hours=hours),
        seq=seq,
        **extra,  # type: ignore[arg-type]
    )


def test_the_latest_review_of_each_reviewer_counts_ties_by_order() -> None:
    reviews = [stored(1, "a", 1, hours=5), stored(2, "a", 5, hours=1), stored(3, "b", 2, 5)]
    reviews += [stored(4, "b", 3, 5)]
    assert [r.review_id for r in counted(reviews)] == ["r1", "r4"]


def test_distribution_means_and_replacements() -> None:
    reviews = [stored(i, f"p{i}", rating) for i, rating in enumerate([1, 2, 4, 5, 5], start=1)]
    reviews.append(stored(6, "p1", 3, hours=1))  # replaces p1's 1
    summary = summarise("c-1", "2026-10", reviews, RULES, OFF, None)
    assert (summary.count, summary.submissions, summary.replaced) == (5, 6, 1)
    assert summary.distribution == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2}
    assert summary.mean == float(Fraction(19, 5))
    # 20 % of 5 drops one from each end: [3, 4, 5] -> 4
    assert (summary.trimmed_mean, summary.trimmed, summary.trim_percent) == (4.0, 1, 20)
    assert summary.counts_for_payment and summary.min_reviews == 3


def test_without_a_reviews_block_nothing_is_trimmed_or_paid() -> None:
    summary = summarise("c-1", "2026-10", [stored(1, "a", 2), stored(2, "b", 4)], None, OFF, [])
    assert summary.trimmed_mean == summary.mean == 3.0
    assert not summary.counts_for_payment and summary.min_reviews is None


def test_an_empty_period() -> None:
    summary = summarise("c-1", "2026-10", [], RULES, OFF, [])
    assert summary.count == 0 and summary.mean is None and summary.trimmed_mean is None
    assert summary.dimensions["usefulness"].mean is None


def test_dimension_means_use_the_reviews_that_have_them() -> None:
    reviews = [
        stored(1, "a", 3, dimensions={"communication": 2, "usefulness": 5}),
        stored(2, "b", 3, dimensions={"communication": 5}),
        stored(3, "a", 3, hours=-1, dimensions={"communication": 1}),  # older: replaced
    ]
    dims = summarise("c-1", "2026-10", reviews, RULES, OFF, None).dimensions
    assert (dims["communication"].mean, dims["communication"].count) == (3.5, 2)
    assert (dims["usefulness"].mean, dims["usefulness"].count) == (5.0, 1)
    assert dims["reliability"].count == 0


def test_comments_need_three_reviewers_and_a_party() -> None:
    two = [stored(1, "a", 3), stored(2, "b", 4)]
    comments = [Comment(rating=4, comment="zz"), Comment(rating=4, comment="aa")]
    hidden = summarise("c-1", "2026-10", two, RULES, OFF, comments)
    assert hidden.comments is None and hidden.comments_hidden == "fewer_than_3_reviewers"
    three = [*two, stored(3, "c", 5)]
    shown = summarise("c-1", "2026-10", three, RULES, OFF, comments)
    assert [c.comment for c in shown.comments or []] == ["aa", "zz"]
    outsider = summarise("c-1", "2026-10", three, RULES, OFF, None)
    assert outsider.comments is None and outsider.comments_hidden == "parties_only"


def test_burst_flags_one_token_with_more_than_its_share() -> None:
    rule = BurstRule(min_reviews=4, max_share=0.5)
    half = [stored(i, f"p{i}", 4, submitter="t1" if i <= 2 else f"t{i}") for i in range(1, 5)]
    assert summarise("c", "2026-10", half, RULES, rule, None).flags == []
    most = [stored(i, f"p{i}", 4, submitter="t1" if i <= 3 else "t9") for i in range(1, 5)]
    (flag,) = summarise("c", "2026-10", most, RULES, rule, None).flags
    assert flag.kind == "burst" and flag.share == 0.75 and "3 of the 4" in flag.detail
    too_few = most[:3]
    assert summarise("c", "2026-10", too_few, RULES, rule, None).flags == []


def test_replaced_reviews_do_not_feed_the_burst_detector() -> None:
    rule = BurstRule(min_reviews=2, max_share=0.5)
    same_reviewer = [stored(i, "p", 4, hours=i, submitter="t1") for i in range(1, 6)]
    same_reviewer.append(stored(9, "q", 4, submitter="t2"))
    assert summarise("c", "2026-10", same_reviewer, RULES, rule, None).flags == []


@given(st.lists(st.integers(1, 5), min_size=1, max_size=40), st.sampled_from([0, 10, 25, 49]))
def test_the_trimmed_mean_is_the_contracts(ratings: list[int], trim: float) -> None:
    rules = ReviewTerms(max_bonus_percent=5, max_penalty_percent=5, trim_percent=trim)
    reviews = [stored(i, f"p{i}", r) for i, r in enumerate(ratings)]
    summary = summarise("c", "2026-10", reviews, rules, OFF, None)
    expected, dropped = trimmed_mean(ratings, trim)
    assert summary.trimmed_mean == float(expected) and summary.trimmed == dropped
    assert sum(summary.distribution.values()) == len(ratings)


def test_the_review_maths_imports_no_infrastructure() -> None:
    pure = ["services.reviews.summary", "services.reviews.crypto", "services.reviews.csv_import"]
    script = (
        "import importlib, json, sys\n"
        f"for name in {pure!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    forbidden = {"fastapi", "sqlalchemy", "aiokafka", "opentelemetry", "starlette"}
    assert [m for m in loaded if m.split(".")[0] in forbidden] == []
