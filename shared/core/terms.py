"""Contract terms (docs/architecture.md, "The payment formula"), validated so that bad
terms never get in.

Every rule fails as a pydantic `ValidationError` whose `loc` names the offending field, so
an API can answer 422 problem+json that points at it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
)

from shared.core import money
from shared.core.agents import Agents, Sources
from shared.core.aggregates import check_aggregation
from shared.core.calendars import BusinessCalendar
from shared.core.decimals import SHOWN_DIGITS, decimal_of, json_number, significant_digits
from shared.core.periods import PERIOD_PATTERN, check_timezone

CONTRACT_ID_PATTERN = r"^[a-z0-9-]{3,64}$"
KPI_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

FIRST_PERIOD, LAST_PERIOD = "2000-01", "9999-12"
MAX_REVIEWERS = 100_000


def _terms_number(value: object) -> Decimal:
    """A terms number: a JSON number (not a string or a bool) with at most 15 significant
    digits, so that it reads back the same from any JSON reader, doubles included."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    found = decimal_of(value)
    if significant_digits(found) > SHOWN_DIGITS:
        raise ValueError(f"must have at most {SHOWN_DIGITS} significant digits")
    return found


Number = Annotated[
    Decimal,
    BeforeValidator(_terms_number),
    PlainSerializer(json_number),
    WithJsonSchema({"type": "number"}),
]
"""A target, breach, threshold or percent: the decimal its JSON number spells, compared
exactly; written back as the same JSON number."""
Percent = Annotated[
    Decimal,
    BeforeValidator(_terms_number),
    Field(ge=0, le=100),
    PlainSerializer(json_number),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100}),
]
Count = Annotated[int, Field(strict=True)]
TicketMetric = Literal["response", "resolution"]
TicketPriority = Literal["P1", "P2", "P3", "P4"]


def _is_none(value: object) -> bool:
    return value is None


def _is_empty(value: object) -> bool:
    return not value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CreditTier(_Frozen):
    """A service credit: `percent` of the base fee when the KPI is past `breach`."""

    breach: Number
    percent: Percent


class Kpi(_Frozen):
    """One service level: how its value is aggregated, its objective, its credit tiers."""

    name: Annotated[str, Field(pattern=KPI_NAME_PATTERN)]
    aggregation: Annotated[str, AfterValidator(check_aggregation)]
    threshold: Number | None = Field(default=None, validate_default=True)
    objective: Literal[">=", "<="]
    target: Number
    credits: tuple[CreditTier, ...]
    no_data: Literal["no_credit", "breach"] = "no_credit"
    """What fewer measurements than `min_count` (or none) earn: no credit, or the largest tier."""
    min_count: Annotated[Count, Field(ge=1)] | None = None
    sources: Sources | None = Field(default=None, exclude_if=_is_none)
    """The parties whose agents' measurements count (None: every measurement, signed or not)."""
    ticket_metric: TicketMetric | None = Field(default=None, exclude_if=_is_none)
    """Measured from the contract's tickets in business hours, not from measurements
    (docs/tickets.md); `threshold`, target and breaches of such a KPI are in hours."""
    priority: TicketPriority | None = Field(default=None, exclude_if=_is_none)
    """The priority of the tickets a ticket KPI covers (every priority without it)."""

    @field_validator("ticket_metric")
    @classmethod
    def _tickets_have_no_sources(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("sources"):
            raise ValueError("a KPI measured from tickets takes no sources (only measurements do)")
        return value

    @field_validator("priority")
    @classmethod
    def _priority_only_for_tickets(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and "ticket_metric" in info.data and not info.data["ticket_metric"]:
            raise ValueError("priority is only allowed on a KPI with a ticket_metric")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold_only_for_share_within(
        cls, value: Decimal | None, info: ValidationInfo
    ) -> Decimal | None:
        aggregation = info.data.get("aggregation")
        if aggregation == "share_within" and value is None:
            raise ValueError("share_within needs a threshold")
        if aggregation is not None and aggregation != "share_within" and value is not None:
            raise ValueError("threshold is only allowed with the share_within aggregation")
        return value

    @field_validator("target")
    @classmethod
    def _share_target_is_a_share(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if info.data.get("aggregation") == "share_within" and not 0 <= value <= 1:
            raise ValueError("a share_within target is a share between 0 and 1")
        return value

    @field_validator("credits")
    @classmethod
    def _tiers_follow_the_objective(
        cls, tiers: tuple[CreditTier, ...], info: ValidationInfo
    ) -> tuple[CreditTier, ...]:
        objective = info.data.get("objective")
        if info.data.get("aggregation") == "share_within":
            if any(not 0 <= tier.breach <= 1 for tier in tiers):
                raise ValueError("a share_within breach is a share between 0 and 1")
        for earlier, later in pairwise(tiers):
            if later.percent <= earlier.percent:
                raise ValueError("tier percents must strictly increase down the list")
            if objective == ">=" and later.breach >= earlier.breach:
                raise ValueError("for '>=' tier breaches must strictly decrease down the list")
            if objective == "<=" and later.breach <= earlier.breach:
                raise ValueError("for '<=' tier breaches must strictly increase down the list")
        return tiers


class ReviewTerms(_Frozen):
    """How customer ratings move the payment (docs/architecture.md, formula step 4)."""

    min_reviews: Annotated[Count, Field(ge=1)] = 3
    neutral: Annotated[Number, Field(gt=1, lt=5)] = Decimal(3)
    max_bonus_percent: Percent
    max_penalty_percent: Percent
    trim_percent: Annotated[Number, Field(ge=0, lt=50)] = Decimal(0)
    bonus_requires_sla_met: Annotated[bool, Field(strict=True)] = True
    max_reviewers: Annotated[Count, Field(ge=1, le=MAX_REVIEWERS)] | None = None
    """At most this many distinct reviewers count per period (the first in bus order); the
    reviews service refuses a review from one more."""


def _in_range(period: str) -> str:
    """Terms take effect from 2000-01 to 9999-12, so every date computed from them exists."""
    if not FIRST_PERIOD <= period <= LAST_PERIOD:
        raise ValueError(f"must lie between {FIRST_PERIOD} and {LAST_PERIOD}")
    return period


class Terms(_Frozen):
    """One version of a contract's terms, exactly the terms JSON of docs/architecture.md."""

    contract_id: Annotated[str, Field(pattern=CONTRACT_ID_PATTERN)]
    provider: Annotated[str, Field(min_length=1, max_length=200)]
    customer: Annotated[str, Field(min_length=1, max_length=200)]
    currency: Annotated[str, AfterValidator(money.check_currency)]
    base_fee: Annotated[Decimal, Field(ge=0, lt=Decimal("1e15"), allow_inf_nan=False)]
    effective_from: Annotated[str, Field(pattern=PERIOD_PATTERN), AfterValidator(_in_range)]
    timezone: Annotated[str, AfterValidator(check_timezone)] = "UTC"
    kpis: tuple[Kpi, ...]
    reviews: ReviewTerms | None = None
    max_credit_percent: Percent = Decimal(100)
    grace_days: Annotated[Count, Field(ge=0, le=366)] = 3
    late_events_months: Annotated[Count, Field(ge=1, le=120)] = 12
    agents: Agents = Field(default=(), exclude_if=_is_empty)
    """The keys agents sign measurements with (docs/architecture.md, "Signed measurements")."""
    require_signed: Annotated[bool, Field(strict=True)] = Field(default=False, exclude_if=_is_empty)

    @field_validator("require_signed")
    @classmethod
    def _signed_by_someone(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("agents"):
            raise ValueError("require_signed needs at least one key in agents")
        return value

    calendar: BusinessCalendar | None = Field(
        default=None, validate_default=True, exclude_if=_is_none
    )
    """When a ticket's clock runs (docs/tickets.md); required by a KPI with a ticket_metric."""

    @field_validator("calendar")
    @classmethod
    def _ticket_kpis_need_a_calendar(
        cls, value: BusinessCalendar | None, info: ValidationInfo
    ) -> BusinessCalendar | None:
        kpis: tuple[Kpi, ...] = info.data.get("kpis") or ()
        if value is None and any(kpi.ticket_metric is not None for kpi in kpis):
            raise ValueError("a KPI with a ticket_metric needs a calendar")
        return value

    @field_validator("base_fee")
    @classmethod
    def _base_fee_fits_the_currency(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is None:
            return value
        if not money.fits_minor_unit(value, currency):
            raise ValueError(f"base_fee has more digits than {currency}'s minor unit allows")
        return money.to_minor_unit(value, currency)

    @field_validator("kpis")
    @classmethod
    def _kpi_names_are_unique(cls, kpis: tuple[Kpi, ...]) -> tuple[Kpi, ...]:
        names = [kpi.name for kpi in kpis]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"KPI names must be unique; repeated: {', '.join(repeated)}")
        return kpis

    @field_serializer("base_fee")
    def _base_fee_as_string(self, value: Decimal) -> str:
        return format(value, "f")

    def kpi(self, name: str) -> Kpi | None:
        """The KPI of that name, or None."""
        return next((kpi for kpi in self.kpis if kpi.name == name), None)

    @property
    def ticket_kpis(self) -> tuple[Kpi, ...]:
        """The KPIs measured from tickets, in terms order."""
        return tuple(kpi for kpi in self.kpis if kpi.ticket_metric is not None)


def version_in_force(versions: Sequence[Terms], period: str) -> int | None:
    """The 1-based version number of the terms in force in `period`, or None.

    The terms in force are the latest version whose `effective_from` ≤ the period; of two
    versions effective from the same month, the later one wins.
    """
    chosen: int | None = None
    for number, terms in enumerate(versions, start=1):
        if terms.effective_from <= period and (
            chosen is None or terms.effective_from >= versions[chosen - 1].effective_from
        ):
            chosen = number
    return chosen


def terms_in_force(versions: Sequence[Terms], period: str) -> Terms | None:
    """The latest version whose `effective_from` ≤ `period` (None if there is none)."""
    number = version_in_force(versions, period)
    return None if number is None else versions[number - 1]
