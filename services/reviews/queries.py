"""Reviews queries: the period summary, and the pseudonym look-up for erasure requests."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.reviews import crypto, keys, store
from services.reviews.config import ReviewsConfig
from services.reviews.handlers import contract_versions
from services.reviews.models import (
    COMMENT_MIN_REVIEWERS,
    Comment,
    PseudonymFound,
    ReviewSummary,
)
from services.reviews.summary import StoredReview, counted, summarise
from shared.core.terms import terms_in_force
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def period_summary(
    runtime: Runtime, config: ReviewsConfig, contract_id: str, period: str, party: bool
) -> ReviewSummary:
    """The summary of `period`; comments are decrypted only for a party of the contract,
    and only when enough counted reviewers rated the period that no single one stands out."""
    versions = await contract_versions(runtime, contract_id)
    in_force = terms_in_force(versions, period)
    rules = in_force.reviews if in_force is not None else None
    held = await store.period_reviews(runtime.engine, contract_id, period)
    comments = None
    if party:
        latest = counted(held, None if rules is None else rules.max_reviewers)
        enough = len(latest) >= COMMENT_MIN_REVIEWERS
        comments = await _open_comments(runtime, config, contract_id, latest) if enough else []
    return summarise(contract_id, period, held, rules, config.burst, comments)


async def _open_comments(
    runtime: Runtime, config: ReviewsConfig, contract_id: str, latest: Sequence[StoredReview]
) -> list[Comment]:
    sealed = await store.sealed_comments(
        runtime.engine, [r.review_id for r in latest if r.has_comment]
    )
    data_keys = await keys.keys_by_id(runtime.engine, config.kek, {s.key_id for s in sealed})
    opened = []
    for item in sealed:
        key = data_keys.get(item.key_id)
        if key is None:
            continue  # erased: the comment is gone for good
        context = crypto.comment_context(contract_id, item.pseudonym, item.review_id)
        try:
            text = crypto.open_sealed(key, item.sealed, context)
        except crypto.Unreadable:
            log.warning("reviews: the comment of review %s does not decrypt", item.review_id)
            continue
        opened.append(Comment(rating=item.rating, comment=text))
    return opened


async def find_pseudonym(
    runtime: Runtime, config: ReviewsConfig, contract_id: str, reviewer: str
) -> PseudonymFound | None:
    """The pseudonym a reviewer id has in a contract, if this service holds anything of it."""
    alias = crypto.pseudonym(config.pepper, contract_id, reviewer)
    if await keys.contract_of(runtime.engine, alias) is None:
        return None
    return PseudonymFound(reviewer_pseudonym=alias)
