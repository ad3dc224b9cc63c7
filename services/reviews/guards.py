"""What keeps reviews from being bought at the door (docs/privacy.md, "Who may do what with
reviews"): the terms' reviewer cap and the burst flag, read from a period's stored reviews."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from services.reviews import store
from services.reviews.store import ReviewRow
from services.reviews.summary import BurstRule, StoredReview, burst_flags, over_cap
from shared.core.review_score import BURST
from shared.core.terms import Terms, terms_in_force

Newcomer = tuple[str, str]
"""A review on its way in, as the cap sees it: (period, reviewer pseudonym)."""


def max_reviewers(versions: Sequence[Terms], period: str) -> int | None:
    """The cap of the terms in force in `period` (None: every reviewer counts)."""
    terms = terms_in_force(versions, period)
    return None if terms is None or terms.reviews is None else terms.reviews.max_reviewers


def cap_reached(versions: Sequence[Terms], period: str) -> str:
    """Why a review from one more reviewer is refused, for the API's 422."""
    cap = max_reviewers(versions, period)
    return (
        f"the terms count at most {cap} distinct reviewers in {period} and {cap} have "
        "reviewed already; a reviewer already counted may replace their review"
    )


async def past_cap(
    engine: AsyncEngine, contract_id: str, versions: Sequence[Terms], new: Sequence[Newcomer]
) -> list[int]:
    """The indices of the `new` reviews whose reviewer is one past their period's cap."""
    refused: list[int] = []
    for period in sorted({p for p, _ in new}):
        cap = max_reviewers(versions, period)
        if cap is None:
            continue
        mine = [i for i, (p, _) in enumerate(new) if p == period]
        held = await store.period_reviews(engine, contract_id, period)
        refused += [mine[i] for i in over_cap(held, [new[i][1] for i in mine], cap)]
    return sorted(refused)


async def flagged(
    engine: AsyncEngine, rule: BurstRule, contract_id: str, rows: list[ReviewRow]
) -> list[ReviewRow]:
    """Flag the new reviews of every period that the burst detector flags with them in it."""
    by_period: dict[str, list[ReviewRow]] = defaultdict(list)
    for row in rows:
        by_period[row.period].append(row)
    periods: set[str] = set()
    for period, new in by_period.items():
        held = await store.period_reviews(engine, contract_id, period)
        last = max((r.seq for r in held), default=0)
        candidates = [
            StoredReview(
                r.review_id,
                r.pseudonym,
                r.rating,
                r.occurred_at,
                last + i,
                {},
                submitter=r.submitter,
            )
            for i, r in enumerate(new, start=1)
        ]
        if burst_flags([*held, *candidates], rule):
            periods.add(period)
    return [replace(row, flags=(BURST,)) if row.period in periods else row for row in rows]
