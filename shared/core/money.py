"""Money: ISO 4217 currencies, their minor units, and the one place amounts are rounded.

Amounts are `Decimal` (or exact `Fraction` while computing), never floats. Rounding is
half-to-even to the currency's minor unit, as docs/architecture.md's payment formula, step 5, pins.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

_CODE = re.compile(r"^[A-Z]{3}$")

Exact = Decimal | Fraction | int


@lru_cache(maxsize=1)
def _known_codes() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True when `code` is an upper-case ISO 4217 code that babel knows ("EUR", "JPY")."""
    return bool(_CODE.match(code)) and code in _known_codes()


def check_currency(code: str) -> str:
    """Return `code` if it is a known ISO 4217 code, else raise `ValueError`."""
    if not is_currency(code):
        raise ValueError(f"{code!r} is not an ISO 4217 currency code such as 'EUR'")
    return code


def minor_digits(currency: str) -> int:
    """How many digits the currency's minor unit has: EUR 2, JPY 0, KWD 3."""
    return int(get_currency_precision(check_currency(currency)))


def to_minor_unit(amount: Exact, currency: str) -> Decimal:
    """Round an exact amount half-to-even to the currency's minor unit.

    The result carries exactly the currency's digits (`Decimal("8000.00")`, JPY
    `Decimal("8000")`) and is never negative zero. No decimal context is involved, so
    no amount is silently cut to 28 digits.
    """
    digits = minor_digits(currency)
    units = round(Fraction(amount) * 10**digits)
    return Decimal(f"{units}e-{digits}")


def fits_minor_unit(amount: Exact, currency: str) -> bool:
    """True when the amount needs no rounding in this currency ("10.001" EUR does)."""
    return Fraction(amount) == Fraction(to_minor_unit(amount, currency))


def format_money(amount: Exact, currency: str) -> str:
    """The amount as a decimal string with exactly the currency's minor digits.

    `format_money(Decimal("8000"), "EUR") == "8000.00"`; JPY gives `"8000"`. An amount
    finer than the minor unit is rounded half-to-even first.
    """
    return format(to_minor_unit(amount, currency), "f")


def parse_money(text: str, currency: str) -> Decimal:
    """Parse a money string that fits the currency's minor unit, else raise `ValueError`."""
    try:
        amount = Decimal(text)
    except ArithmeticError as error:
        raise ValueError(f"{text!r} is not a decimal amount") from error
    if not amount.is_finite():
        raise ValueError(f"{text!r} is not a finite amount")
    if not fits_minor_unit(amount, currency):
        raise ValueError(f"{text!r} has more digits than {currency}'s minor unit allows")
    return to_minor_unit(amount, currency)
