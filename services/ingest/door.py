"""The door's rules: a measurement that can never count is refused, naming why.

Pure functions of a measurement, its contract's terms versions and the time it arrives
(see docs/architecture.md, "The door tells the truth"): the contract must exist, the KPI
must be in the terms in force at `observed_at` (and not measured from tickets),
`observed_at` must lie between the first `effective_from` and the contract's
`late_events_months` window, and the value within ±1e15 with at most 18 decimal places.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.ingest.contracts import Contract, DoorTerms

MAX_ABS_VALUE = Decimal("1e15")
MAX_DECIMAL_PLACES = 18


@dataclass(frozen=True)
class Refusal:
    """Why the measurement at `index` can never count: `field` is what to fix."""

    index: int
    field: str
    type: str
    msg: str

    def error(self, batch: str = "measurements") -> dict[str, object]:
        """The refusal as a validation error of `batch[index]`."""
        return {"loc": [batch, self.index, self.field], "msg": self.msg, "type": self.type}


def value_refusal(index: int, value: Decimal) -> Refusal | None:
    if not value.is_finite():
        return Refusal(index, "value", "finite_number", "value must be a finite number")
    if value.copy_abs() > MAX_ABS_VALUE:  # abs() would round to the context precision
        return Refusal(index, "value", "value_out_of_range", "value lies outside ±1e15")
    if decimal_places(value) > MAX_DECIMAL_PLACES:
        return Refusal(
            index,
            "value",
            "too_many_decimal_places",
            f"value has more than {MAX_DECIMAL_PLACES} decimal places",
        )
    return None


def decimal_places(value: Decimal) -> int:
    """The decimal places finite `value` needs (trailing zeros aside): 1.50 needs 1, 100
    none. Read from `str(value)`, which stays short however far the exponent goes."""
    mantissa, _, exponent = str(value).partition("E")
    whole, _, fraction = mantissa.lstrip("-").partition(".")
    digits = whole + fraction
    trailing_zeros = len(digits) - len(digits.rstrip("0"))
    if trailing_zeros == len(digits):
        return 0
    return max(0, len(fraction) - int(exponent or 0) - trailing_zeros)


def value_text(value: Decimal) -> str:
    """`value` as a JSON number without exponent or trailing zeros ("0.1", "-2", "0"), for a
    value `value_refusal` accepts: the text the published event carries."""
    if not value:
        return "0"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def terms_refusal(
    index: int, contract: Contract | None, kpi: str, period: str | None, current: str
) -> Refusal | None:
    """Why the contract's terms can never count a measurement of `kpi` observed in `period`
    (None: an instant too far from ours to have a period) arriving in `current`, or None."""
    if contract is None:
        return Refusal(index, "contract_id", "contract_unknown", "no such contract")
    if period is None:
        return Refusal(index, "observed_at", "before_effective_from", "observed_at is out of range")
    if period < contract.first:
        return Refusal(
            index,
            "observed_at",
            "before_effective_from",
            f"observed_at falls in {period}, before the contract takes effect ({contract.first})",
        )
    terms = in_force(contract.versions, period)
    if months_between(period, current) > terms.late_events_months:
        return Refusal(
            index,
            "observed_at",
            "too_late",
            f"observed_at falls in {period}, more than the contract's late_events_months "
            f"({terms.late_events_months}) before {current}",
        )
    if not terms.has_kpi(kpi):
        return Refusal(
            index,
            "kpi",
            "kpi_unknown",
            f"KPI {kpi!r} is not in the contract's terms in force in {period}",
        )
    if terms.is_ticket_kpi(kpi):
        return Refusal(
            index,
            "kpi",
            "ticket_kpi",
            f"KPI {kpi!r} is measured from ticket events (POST /v1/tickets/events), "
            "not from measurements",
        )
    return None


def in_force(versions: tuple[DoorTerms, ...], period: str) -> DoorTerms:
    """The latest version whose `effective_from` ≤ `period` (a later version wins a tie);
    `period` must not lie before the first one."""
    chosen: DoorTerms | None = None
    for terms in versions:
        if terms.effective_from <= period and (
            chosen is None or terms.effective_from >= chosen.effective_from
        ):
            chosen = terms
    return chosen or versions[0]


def months_between(earlier: str, later: str) -> int:
    """Whole calendar months from period `earlier` to period `later` ("YYYY-MM")."""
    return (int(later[:4]) * 12 + int(later[5:7])) - (int(earlier[:4]) * 12 + int(earlier[5:7]))
