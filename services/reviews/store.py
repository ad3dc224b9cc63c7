"""Reviews tables and queries: contract terms (from the bus) and the review read model.

Nothing here holds personal data in clear: reviewers are pseudonyms, comments are
ciphertext, the submitting token is a keyed hash. Data keys live in `keys.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.reviews.crypto import Sealed
from services.reviews.models import DIMENSIONS
from services.reviews.summary import StoredReview
from shared import db, jsonutil
from shared.core.terms import Terms
from shared.db import UtcDateTime

metadata = MetaData()
contract_terms = Table(
    "reviews_contract_terms",
    metadata,
    Column("contract_id", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("terms", Text, nullable=False),
)
reviews = Table(
    "reviews_submissions",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("review_id", String(36), nullable=False, unique=True),
    Column("contract_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("pseudonym", String(64), nullable=False, index=True),
    Column("rating", SmallInteger, nullable=False),
    *(Column(name, SmallInteger, nullable=True) for name in DIMENSIONS),
    Column("comment_ciphertext", Text, nullable=True),
    Column("comment_nonce", String(32), nullable=True),
    Column("key_id", String(36), nullable=True),
    Column("submitter", String(32), nullable=True),
    Column("source", String(16), nullable=False),
    Column("flags", String(200), nullable=False, default=""),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_reviews_submissions_contract_period", "contract_id", "period"),
)


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One review to store (what its event carries, plus period, submitter and source)."""

    review_id: str
    contract_id: str
    period: str
    pseudonym: str
    rating: int
    dimensions: dict[str, int]
    sealed: Sealed | None
    key_id: str | None
    submitter: str | None
    source: str
    flags: Sequence[str]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class SealedComment:
    review_id: str
    pseudonym: str
    rating: int
    key_id: str
    sealed: Sealed


async def put_terms(
    conn: AsyncConnection, contract_id: str, version: int, terms: dict[str, Any]
) -> None:
    statement = db.upsert(conn, contract_terms).values(
        contract_id=contract_id, version=version, terms=jsonutil.dumps(terms).decode()
    )
    await conn.execute(statement.on_conflict_do_nothing())


async def terms_versions(conn: AsyncConnection, contract_id: str) -> list[Terms]:
    """The contract's versions in order (empty if this service has not heard of it)."""
    result = await conn.execute(
        select(contract_terms.c.terms)
        .where(contract_terms.c.contract_id == contract_id)
        .order_by(contract_terms.c.version)
    )
    return [Terms.model_validate(jsonutil.loads(row.terms)) for row in result]


async def put_reviews(conn: AsyncConnection, rows: Sequence[ReviewRow]) -> None:
    """Insert; a review already there (seen on the bus first) keeps its row but learns its
    submitter, so the burst detector sees every token."""
    if not rows:
        return
    statement = db.upsert(conn, reviews)
    statement = statement.on_conflict_do_update(
        index_elements=[reviews.c.review_id],
        set_={"submitter": func.coalesce(statement.excluded.submitter, reviews.c.submitter)},
    )
    await conn.execute(statement, [_values(row) for row in rows])


def _values(row: ReviewRow) -> dict[str, Any]:
    return {
        "review_id": row.review_id,
        "contract_id": row.contract_id,
        "period": row.period,
        "pseudonym": row.pseudonym,
        "rating": row.rating,
        **{name: row.dimensions.get(name) for name in DIMENSIONS},
        "comment_ciphertext": row.sealed.ciphertext if row.sealed else None,
        "comment_nonce": row.sealed.nonce if row.sealed else None,
        "key_id": row.key_id,
        "submitter": row.submitter,
        "source": row.source,
        "flags": ",".join(row.flags),
        "occurred_at": row.occurred_at,
    }


async def period_reviews(engine: AsyncEngine, contract_id: str, period: str) -> list[StoredReview]:
    """Every review of the period (replaced ones too), in store order."""
    r = reviews.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(reviews)
            .where(and_(r.contract_id == contract_id, r.period == period))
            .order_by(r.seq)
        )
        return [_stored(row) for row in result]


def _stored(row: Any) -> StoredReview:
    dimensions = {name: getattr(row, name) for name in DIMENSIONS if getattr(row, name)}
    return StoredReview(
        review_id=row.review_id,
        pseudonym=row.pseudonym,
        rating=row.rating,
        occurred_at=row.occurred_at,
        seq=row.seq,
        dimensions=dimensions,
        submitter=row.submitter,
        source=row.source,
        has_comment=row.comment_ciphertext is not None,
        flags=tuple(flag for flag in row.flags.split(",") if flag),
    )


async def sealed_comments(engine: AsyncEngine, review_ids: Collection[str]) -> list[SealedComment]:
    """The still-encrypted comments of these reviews (erased ones have none left)."""
    if not review_ids:
        return []
    r = reviews.c
    async with engine.connect() as conn:
        result = await conn.execute(
            select(
                r.review_id, r.pseudonym, r.rating, r.key_id, r.comment_ciphertext, r.comment_nonce
            )
            .where(r.review_id.in_(list(review_ids)))
            .where(r.comment_ciphertext.is_not(None))
        )
        return [
            SealedComment(
                row.review_id,
                row.pseudonym,
                row.rating,
                row.key_id,
                Sealed(row.comment_ciphertext, row.comment_nonce),
            )
            for row in result
            if row.key_id and row.comment_nonce
        ]


async def known_review_ids(engine: AsyncEngine, review_ids: Collection[str]) -> set[str]:
    if not review_ids:
        return set()
    async with engine.connect() as conn:
        result = await conn.execute(
            select(reviews.c.review_id).where(reviews.c.review_id.in_(list(review_ids)))
        )
        return {row.review_id for row in result}
