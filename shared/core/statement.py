"""The payment computation's inputs (`Observation`, `Rating`) and output (`Statement`).

`Statement` serialises to exactly the statement JSON of docs/architecture.md: money as
decimal strings with the currency's minor digits, every line with its derivation down to the
events used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from shared.core import decimals, money
from shared.core.aggregates import events_digest
from shared.core.decimals import decimal_of, measurement_value
from shared.core.periods import PERIOD_PATTERN
from shared.core.terms import CONTRACT_ID_PATTERN

LineKind = Literal["base_fee", "sla_credit", "credit_cap", "review_adjustment", "adjustment"]
Status = Literal["provisional", "final"]
EMPTY_DIGEST = events_digest(())


def exact(value: Decimal | float) -> Fraction:
    """A terms number as an exact rational (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(decimal_of(value) if isinstance(value, float) else value)


def number(value: Decimal | Fraction | int) -> str:
    """A KPI value or percent as a human-readable number of at most 15 significant digits."""
    return decimals.text(value)


def line_id(contract_id: str, period: str, kind: str, kpi: str | None = None) -> str:
    """The deterministic id of a statement line: `contract:period:kind:kpi`."""
    return f"{contract_id}:{period}:{kind}:{kpi or ''}"


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} occurred_at needs a time zone")


@dataclass(frozen=True, slots=True)
class Observation:
    """One SLA measurement: the value of a KPI observed at an instant. The value is the
    decimal its JSON spells; a float given here means its shortest repr (0.1 is 1/10)."""

    event_id: str
    kpi: str
    value: Decimal
    occurred_at: datetime
    party: str | None = None
    """The party of the agent whose key signed it; None when it came unsigned."""

    def __post_init__(self) -> None:
        _aware(self.occurred_at, f"measurement {self.event_id}")
        if type(self.value) is not Decimal or not self.value.is_finite():
            try:
                object.__setattr__(self, "value", measurement_value(self.value))
            except ValueError as error:
                raise ValueError(f"measurement {self.event_id}: {error}") from None


@dataclass(frozen=True, slots=True)
class Rating:
    """One customer rating (1 to 5) by a pseudonymous reviewer; `seq` is its bus order,
    `source` how it came in (`api`, `import`), `flags` what the reviews service flagged."""

    event_id: str
    reviewer: str
    rating: int
    occurred_at: datetime
    seq: int
    source: str = "api"
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _aware(self.occurred_at, f"review {self.event_id}")
        if isinstance(self.rating, bool) or self.rating not in range(1, 6):
            raise ValueError(f"review {self.event_id} has a rating outside 1 to 5")


@dataclass(frozen=True, slots=True)
class Release:
    """An admin's release of a period's held review line; it covers the ratings before it in
    bus order (`seq`)."""

    event_id: str
    period: str
    seq: int


def _money_text(amount: Decimal) -> str:
    return format(amount.copy_abs() if amount.is_zero() else amount, "f")


Money = Annotated[Decimal, PlainSerializer(_money_text, return_type=str)]

_CORE_DERIVATION = frozenset(
    {"aggregation", "value", "target", "tier_percent", "events", "events_digest"}
)


class NotCounted(BaseModel):
    """Measurements of a KPI kept but not counted: they came from parties (or unsigned,
    `"unsigned"`) that the KPI's `sources` do not name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: Annotated[int, Field(ge=0)]
    events_digest: str
    parties: dict[str, int]


class Derivation(BaseModel):
    """How a line's amount follows from the terms and the events it used.

    The six core keys are always present; the others only where they say something.
    `reason` names why a line is zero (`no_data`, `too_few_reviews`, `sla_not_met`,
    `held_burst`); a held review line shows what it would pay in `held_amount`, and
    `review_sources` counts the counted ratings by where they came from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    aggregation: str | None = None
    value: float | None = None
    target: float | None = None
    tier_percent: float | None = None
    events: Annotated[int, Field(ge=0)] = 0
    events_digest: str = EMPTY_DIGEST
    objective: str | None = None
    threshold: float | None = None
    breach: float | None = None
    percent: float | None = None
    base_fee: str | None = None
    reviews: int | None = None
    trimmed: int | None = None
    reason: str | None = None
    corrects_period: str | None = None
    corrects_line_id: str | None = None
    dispute_id: str | None = None
    flags: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    not_counted: NotCounted | None = None
    review_sources: dict[str, int] | None = None
    held_amount: str | None = None
    tickets: int | None = None
    """For a ticket KPI: how many tickets it covered (`events_digest` is their ids')."""

    @model_serializer(mode="wrap")
    def _skip_empty_extras(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k in _CORE_DERIVATION or v is not None}


class Line(BaseModel):
    """One line of a statement; `amount` is already rounded to the currency's minor unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_id: str
    kind: LineKind
    kpi: str | None = None
    amount: Money
    description: str
    derivation: Derivation = Derivation()


class Entry(BaseModel):
    """A reference to the hash-chained journal entry that posted a statement's lines."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_id: str
    hash: str
    prev_hash: str


class Statement(BaseModel):
    """A contract's statement for one period (docs/architecture.md, "The payment formula")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract_id: Annotated[str, Field(pattern=CONTRACT_ID_PATTERN)]
    period: Annotated[str, Field(pattern=PERIOD_PATTERN)]
    status: Status = "provisional"
    terms_version: Annotated[int, Field(ge=1)] = 1
    currency: str
    total: Money
    lines: tuple[Line, ...]
    entries: tuple[Entry, ...] = ()

    @model_validator(mode="after")
    def _amounts_are_money(self) -> Statement:
        places = -money.minor_digits(self.currency)
        amounts = [self.total, *(line.amount for line in self.lines)]
        if any(amount.as_tuple().exponent != places for amount in amounts):
            raise ValueError(f"amounts must have exactly {-places} decimals in {self.currency}")
        if self.total != sum((line.amount for line in self.lines), Decimal(0)):
            raise ValueError("total must be the sum of the lines")
        return self
