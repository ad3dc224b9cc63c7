"""What the reviews API takes and gives: requests, replies and the period summary."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.events import AwareDatetime, ContractId

DIMENSIONS = ("communication", "usefulness", "reliability")
MAX_COMMENT = 5000
MAX_REVIEWER = 320
COMMENT_MIN_REVIEWERS = 3

Score = Annotated[int, Field(strict=True, ge=1, le=5)]
ReviewerId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REVIEWER)
]
Pseudonym = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Dimensions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    communication: Score
    usefulness: Score
    reliability: Score


class ReviewIn(BaseModel):
    """`POST /v1/reviews`; `reviewer` is hashed at once and never stored or published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: ContractId
    reviewer: ReviewerId
    rating: Score
    dimensions: Dimensions
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] | None = None
    occurred_at: AwareDatetime | None = None

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None


class Submitted(BaseModel):
    review_id: str
    reviewer_pseudonym: str
    period: str


class Released(BaseModel):
    contract_id: str
    period: str
    release_id: str = Field(description="the id of the `review.line.released` event")


class PseudonymRequest(BaseModel):
    """An admin's look-up for a data subject's erasure request; nothing is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: ContractId
    reviewer: ReviewerId


class PseudonymFound(BaseModel):
    reviewer_pseudonym: str


class Imported(BaseModel):
    imported: int
    duplicates: int
    ignored_columns: list[str]


class DimensionSummary(BaseModel):
    mean: float | None
    count: int


class Flag(BaseModel):
    kind: Literal["burst"]
    share: float
    detail: str


class Comment(BaseModel):
    rating: int
    comment: str


class ReviewSummary(BaseModel):
    """A period's ratings with no personal data: counts, means, flags, and (for the parties,
    from three reviewers on) the comments, in no particular order."""

    contract_id: str
    period: str
    count: int = Field(description="reviewers whose latest review counts")
    submissions: int
    replaced: int = Field(description="earlier reviews replaced by the same reviewer's later one")
    distribution: dict[str, int]
    mean: float | None
    trimmed_mean: float | None
    trim_percent: float
    trimmed: int = Field(description="ratings dropped at each end for the trimmed mean")
    min_reviews: int | None
    max_reviewers: int | None = Field(
        description="distinct reviewers who count at most (the terms' cap; None: no cap)"
    )
    counts_for_payment: bool
    dimensions: dict[str, DimensionSummary]
    sources: dict[str, int]
    flags: list[Flag]
    comments: list[Comment] | None
    comments_hidden: Literal["fewer_than_3_reviewers", "parties_only"] | None
