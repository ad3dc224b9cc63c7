"""Reviews commands: submit, import, release, erase. Each publishes first and answers only once the
bus acknowledged (`BusUnavailable` otherwise); the plaintext reviewer id and comment stay in
these functions' locals: hashed or encrypted before anything is stored, published or logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.reviews import crypto, guards, keys, store
from services.reviews.config import ReviewsConfig
from services.reviews.csv_import import ImportRow, InvalidCsv, parse_csv
from services.reviews.models import Imported, Released, ReviewIn, Submitted
from services.reviews.store import ReviewRow
from shared.core.periods import period_of
from shared.core.review_score import BURST
from shared.core.terms import Terms
from shared.events import (
    ReviewerErased,
    ReviewLineReleased,
    ReviewSubmitted,
    deterministic_event_id,
    make_event,
    utcnow,
)
from shared.publishing import publish_events
from shared.runtime import Runtime


class UnknownContract(LookupError):
    """This service has not (yet) heard of the contract's terms."""


class UnknownReviewer(LookupError):
    """No review and no key belongs to that pseudonym."""


class FutureReview(ValueError):
    """A review dated in the future."""


class UncountableDate(ValueError):
    """A review dated where no period of the contract can count it."""


class TooManyReviewers(ValueError):
    """A review from one distinct reviewer more than the terms' `max_reviewers` count."""


class NothingHeld(LookupError):
    """No review of the period is flagged as a burst: there is no held line to release."""


def countable_period(moment: datetime, versions: Sequence[Terms]) -> str:
    """The contract's period that `moment` falls in: it must have one in the contract's time
    zone (year 1 seen west of UTC has none), no earlier than the first terms' period."""
    try:
        period = period_of(moment, versions[-1].timezone)
    except ValueError as exc:
        raise UncountableDate(f"has no calendar month in {versions[-1].timezone}") from exc
    first = min(terms.effective_from for terms in versions)
    if period < first:
        raise UncountableDate(f"lies before the contract's first terms ({first})")
    return period


@dataclass(frozen=True, slots=True)
class Draft:
    """A review on its way in; `comment` is the only plaintext, and it is sealed below."""

    review_id: str
    pseudonym: str
    rating: int
    dimensions: dict[str, int]
    comment: str | None
    occurred_at: datetime
    period: str


async def contract_versions(runtime: Runtime, contract_id: str) -> list[Terms]:
    async with runtime.engine.connect() as conn:
        versions = await store.terms_versions(conn, contract_id)
    if not versions:
        raise UnknownContract(contract_id)
    return versions


async def submit(
    runtime: Runtime, config: ReviewsConfig, review: ReviewIn, submitter: str
) -> Submitted:
    now = utcnow()
    versions = await contract_versions(runtime, review.contract_id)
    occurred = review.occurred_at or now
    skew = runtime.settings.max_clock_skew_s
    if occurred > now + timedelta(seconds=skew):
        raise FutureReview(f"occurred_at lies more than {skew:g} s ahead of our clock")
    period = countable_period(occurred, versions)
    alias = crypto.pseudonym(config.pepper, review.contract_id, review.reviewer)
    draft = Draft(
        review_id=str(uuid.uuid4()),
        pseudonym=alias,
        rating=review.rating,
        dimensions=review.dimensions.model_dump(),
        comment=review.comment,
        occurred_at=occurred,
        period=period,
    )
    if await guards.past_cap(runtime.engine, review.contract_id, versions, [(period, alias)]):
        raise TooManyReviewers(guards.cap_reached(versions, period))
    await _record(runtime, config, review.contract_id, [draft], submitter, "api")
    return Submitted(review_id=draft.review_id, reviewer_pseudonym=alias, period=draft.period)


async def import_csv(
    runtime: Runtime, config: ReviewsConfig, contract_id: str, body: bytes, submitter: str
) -> Imported:
    """All rows or none (`InvalidCsv`); a row imported before is a duplicate, not a new review."""
    now = utcnow()
    versions = await contract_versions(runtime, contract_id)
    skew = timedelta(seconds=runtime.settings.max_clock_skew_s)
    parsed = parse_csv(body, now, config.import_max_rows, skew)
    periods = _row_periods(parsed.rows, versions)
    drafts: dict[str, Draft] = {}
    rows_of: dict[str, int] = {}
    for number, (row, period) in enumerate(zip(parsed.rows, periods, strict=True), start=1):
        alias = crypto.pseudonym(config.pepper, contract_id, row.reviewer)
        producer = f"review-import:{alias}:{row.submitted_at.isoformat()}"
        review_id = str(deterministic_event_id(contract_id, producer))
        drafts.setdefault(
            review_id,
            Draft(
                review_id=review_id,
                pseudonym=alias,
                rating=row.rating,
                dimensions=dict(row.dimensions),
                comment=row.comment,
                occurred_at=row.submitted_at,
                period=period,
            ),
        )
        rows_of.setdefault(review_id, number)
    known = await store.known_review_ids(runtime.engine, drafts.keys())
    fresh = [draft for review_id, draft in drafts.items() if review_id not in known]
    new = [(draft.period, draft.pseudonym) for draft in fresh]
    refused = [fresh[i] for i in await guards.past_cap(runtime.engine, contract_id, versions, new)]
    if refused:
        raise InvalidCsv(
            [
                {
                    "row": rows_of[draft.review_id],
                    "errors": [
                        {"field": "reviewer", "msg": guards.cap_reached(versions, draft.period)}
                    ],
                }
                for draft in refused
            ]
        )
    await _record(runtime, config, contract_id, fresh, submitter, "import")
    return Imported(
        imported=len(fresh),
        duplicates=len(parsed.rows) - len(fresh),
        ignored_columns=parsed.ignored_columns,
    )


def _row_periods(rows: Sequence[ImportRow], versions: Sequence[Terms]) -> list[str]:
    """Each row's period, or `InvalidCsv` naming every row dated where none counts it."""
    periods, problems = [], []
    for number, row in enumerate(rows, start=1):
        try:
            periods.append(countable_period(row.submitted_at, versions))
        except UncountableDate as exc:
            problems.append({"row": number, "errors": [{"field": "submitted_at", "msg": str(exc)}]})
    if problems:
        raise InvalidCsv(problems)
    return periods


async def release(runtime: Runtime, contract_id: str, period: str, admin: str) -> Released:
    """Publish the release of `period`'s held review line. Its id follows the latest
    flagged review, so a repeated release is the same event and a new burst needs a new one."""
    await contract_versions(runtime, contract_id)
    held = await store.period_reviews(runtime.engine, contract_id, period)
    flagged = [review for review in held if BURST in review.flags]
    if not flagged:
        raise NothingHeld(period)
    last = max(flagged, key=lambda review: review.seq)
    event = make_event(
        ReviewLineReleased(period=period, released_by=admin),
        contract_id=contract_id,
        source="reviews:release",
        producer_id=f"review-release:{period}:{last.review_id}",
    )
    await publish_events(runtime.bus, [event])
    return Released(contract_id=contract_id, period=period, release_id=str(event.event_id))


async def erase(runtime: Runtime, pseudonym: str) -> None:
    """Destroy the reviewer's keys (first: that is the erasure), then say so on the bus."""
    contract_id = await keys.contract_of(runtime.engine, pseudonym)
    if contract_id is None:
        raise UnknownReviewer(pseudonym)
    await keys.destroy(runtime.engine, pseudonym)
    event = make_event(
        ReviewerErased(reviewer_pseudonym=pseudonym),
        contract_id=contract_id,
        source="reviews:erasure",
    )
    await publish_events(runtime.bus, [event])


async def _record(
    runtime: Runtime,
    config: ReviewsConfig,
    contract_id: str,
    drafts: Sequence[Draft],
    submitter: str,
    source: str,
) -> None:
    if not drafts:
        return
    now = utcnow()
    with_comment = {d.pseudonym for d in drafts if d.comment is not None}
    data_keys = await keys.data_keys_for(runtime.engine, config.kek, contract_id, with_comment, now)
    rows = [_sealed_row(contract_id, d, data_keys, submitter, source) for d in drafts]
    rows = await guards.flagged(runtime.engine, config.burst, contract_id, rows)
    events = [
        make_event(
            ReviewSubmitted(
                review_id=row.review_id,
                reviewer_pseudonym=row.pseudonym,
                rating=row.rating,
                dimensions=row.dimensions,
                comment_ciphertext=row.sealed.ciphertext if row.sealed else None,
                comment_nonce=row.sealed.nonce if row.sealed else None,
                key_id=row.key_id,
                flags=list(row.flags),
            ),
            contract_id=contract_id,
            source=f"reviews:{source}",
            occurred_at=row.occurred_at,
            producer_id=f"review:{row.review_id}",
            recorded_at=now,
        )
        for row in rows
    ]
    await publish_events(runtime.bus, events)
    async with runtime.engine.begin() as conn:
        await store.put_reviews(conn, rows)


def _sealed_row(
    contract_id: str,
    draft: Draft,
    data_keys: dict[str, tuple[str, bytes]],
    submitter: str,
    source: str,
) -> ReviewRow:
    sealed = key_id = None
    if draft.comment is not None:
        key_id, key = data_keys[draft.pseudonym]
        context = crypto.comment_context(contract_id, draft.pseudonym, draft.review_id)
        sealed = crypto.seal(key, draft.comment, context)
    return ReviewRow(
        review_id=draft.review_id,
        contract_id=contract_id,
        period=draft.period,
        pseudonym=draft.pseudonym,
        rating=draft.rating,
        dimensions=draft.dimensions,
        sealed=sealed,
        key_id=key_id,
        submitter=submitter,
        source=source,
        flags=(),
        occurred_at=draft.occurred_at,
    )
