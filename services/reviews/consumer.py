"""Bus edge of reviews: learn contract terms, and keep the read model complete.

`slapay.contracts` gives the terms (timezone, trim_percent, min_reviews). `slapay.reviews`
fills in any review this service published but did not store (a crash between the two, or
another replica) and re-applies erasures. Every effect is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.reviews import keys, store
from services.reviews.crypto import Sealed
from shared.consuming import envelopes, run_consumer
from shared.core.periods import period_of
from shared.core.review_score import review_source
from shared.events import (
    TOPIC_CONTRACTS,
    TOPIC_REVIEWS,
    Envelope,
    ReviewerErased,
    ReviewSubmitted,
    TermsAgreed,
)
from shared.runtime import Runtime

GROUP = "reviews"


async def consume_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_CONTRACTS, TOPIC_REVIEWS], GROUP)
    await run_consumer(
        runtime.bus,
        consumer,
        lambda delivered: apply_events(runtime.engine, envelopes(delivered)),
        isolation=runtime.isolation(GROUP),
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


async def apply_events(engine: AsyncEngine, events: Sequence[Envelope]) -> None:
    async with engine.begin() as conn:
        for event in events:
            if event.type == TermsAgreed.TYPE:
                agreed = event.payload()
                assert isinstance(agreed, TermsAgreed)
                await store.put_terms(conn, event.contract_id, agreed.version, agreed.terms)
        rows = []
        for event in events:
            if event.type == ReviewSubmitted.TYPE:
                versions = await store.terms_versions(conn, event.contract_id)
                timezone = versions[-1].timezone if versions else "UTC"
                rows.append(_row(event, period_of(event.occurred_at, timezone)))
        await store.put_reviews(conn, rows)
    for event in events:
        if event.type == ReviewerErased.TYPE:
            erased = event.payload()
            assert isinstance(erased, ReviewerErased)
            await keys.destroy(engine, erased.reviewer_pseudonym, event.occurred_at)


def _row(event: Envelope, period: str) -> store.ReviewRow:
    review = event.payload()
    assert isinstance(review, ReviewSubmitted)
    sealed = None
    if review.comment_ciphertext is not None and review.comment_nonce is not None:
        sealed = Sealed(review.comment_ciphertext, review.comment_nonce)
    return store.ReviewRow(
        review_id=review.review_id,
        contract_id=event.contract_id,
        period=period,
        pseudonym=review.reviewer_pseudonym,
        rating=review.rating,
        dimensions=dict(review.dimensions),
        sealed=sealed,
        key_id=review.key_id,
        submitter=None,
        source=review_source(event.source),
        flags=review.flags,
        occurred_at=event.occurred_at,
    )
