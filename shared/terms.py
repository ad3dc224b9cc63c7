"""Contract terms (DESIGN.md "The payment formula"), validated so that bad terms never get in.

Every rule fails as a pydantic `ValidationError` whose `loc` names the offending field, so
an API can answer 422 problem+json that points at it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, available_timezones

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

from shared import money
from shared.aggregates import check_aggregation
from shared.decimals import SHOWN_DIGITS, decimal_of, json_number, significant_digits

CONTRACT_ID_PATTERN = r"^[a-z0-9-]{3,64}$"
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
KPI_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

FIRST_PERIOD, LAST_PERIOD = "2000-01", "9999-12"


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


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> tzinfo:
    """The IANA time zone of that name ("Europe/Berlin"), else raise `ValueError`."""
    if name == "UTC":
        return UTC
    if name not in _known_zones():
        raise ValueError(f"{name!r} is not an IANA time zone name such as 'Europe/Berlin'")
    return ZoneInfo(name)


def check_timezone(name: str) -> str:
    """Return `name` if it is an IANA time zone name, else raise `ValueError`."""
    zone(name)
    return name


def period_of(dt: datetime, tz: str) -> str:
    """The period "YYYY-MM" that the aware instant `dt` falls in, in time zone `tz`."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("period_of needs an aware datetime")
    try:
        local = dt.astimezone(zone(tz))
    except OverflowError:  # year 1 seen west of UTC, year 9999 east of it
        raise ValueError(f"{dt.isoformat()} has no calendar month in {tz}") from None
    return f"{local.year:04d}-{local.month:02d}"


def period_bounds(period: str, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the calendar month `period` in time zone `tz`.

    Local midnight of the 1st that falls in a DST gap maps to the instant the gap opens,
    and one that repeats maps to its first occurrence, so an instant `t` lies in
    [start, end) exactly when `period_of(t, tz) == period`.
    """
    if not re.match(PERIOD_PATTERN, period) or not 1 <= int(period[:4]) < 9999:
        raise ValueError(f"{period!r} is not a period YYYY-MM")
    year, month = int(period[:4]), int(period[5:])
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    local = zone(tz)
    try:
        start = datetime(year, month, 1, tzinfo=local).astimezone(UTC)
        end = datetime(*following, 1, tzinfo=local).astimezone(UTC)
    except OverflowError:  # 0001-01 east of UTC starts before the first UTC instant
        raise ValueError(f"{period} has no bounds in UTC in {tz}") from None
    return start, end


class PeriodFinder:
    """`period_of` for many instants in one time zone: the bounds of the period found last
    answer the next instant with two comparisons (a fold's events cluster in one month)."""

    def __init__(self, tz: str) -> None:
        self.tz = tz
        self._period = ""
        self._bounds: tuple[datetime, datetime] | None = None

    def __call__(self, dt: datetime) -> str:
        bounds = self._bounds
        if bounds is not None and bounds[0] <= dt < bounds[1]:
            return self._period
        self._period = period_of(dt, self.tz)
        self._bounds = period_bounds(self._period, self.tz)
        return self._period


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
    """How customer ratings move the payment (DESIGN.md payment formula step 4)."""

    min_reviews: Annotated[Count, Field(ge=1)] = 3
    neutral: Annotated[Number, Field(gt=1, lt=5)] = Decimal(3)
    max_bonus_percent: Percent
    max_penalty_percent: Percent
    trim_percent: Annotated[Number, Field(ge=0, lt=50)] = Decimal(0)
    bonus_requires_sla_met: Annotated[bool, Field(strict=True)] = True


def _in_range(period: str) -> str:
    """Terms take effect from 2000-01 to 9999-12, so every date computed from them exists."""
    if not FIRST_PERIOD <= period <= LAST_PERIOD:
        raise ValueError(f"must lie between {FIRST_PERIOD} and {LAST_PERIOD}")
    return period


class Terms(_Frozen):
    """One version of a contract's terms, exactly the terms JSON of DESIGN.md."""

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
