"""Numbers as the decimals their JSON spells: 0.1 + 0.2 is 0.3, not 0.30000000000000004.

A measurement value, a target, a breach or a threshold means the decimal written in its
JSON; aggregates and comparisons are exact (`Decimal` sums in an unbounded context,
`Fraction` where a division is involved), and only money is ever rounded. What is shown as
a JSON number in a derivation is rounded to 15 significant digits, which every IEEE double
(and so every JSON and JCS reader) holds exactly.
"""

from __future__ import annotations

import decimal
import sys
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

MAX_DOUBLE = Decimal(repr(sys.float_info.max))
"""The largest magnitude a measurement may have: every reader of a JSON number can hold it."""
MAX_PLACES = 1074
"""The most decimal places a measurement may be spelled with (a double's exact expansion
needs at most this many; Postgres `numeric` takes 16,383)."""
SHOWN_DIGITS = 15

_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow],
)
_SHOWN = decimal.Context(prec=SHOWN_DIGITS, rounding=decimal.ROUND_HALF_EVEN)
_LARGEST_SHOWN = Decimal("1.79769313486231E+308")  # the largest 15-digit double


def decimal_of(value: object) -> Decimal:
    """The decimal a JSON number (or a Python number) spells; a float means its shortest
    repr, which is what any JSON writer printed for it. `ValueError` if not finite."""
    if isinstance(value, Decimal):
        found = value
    elif isinstance(value, int):  # bool included: `true` has always read as 1
        found = Decimal(int(value))
    elif isinstance(value, float):
        found = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            found = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        raise ValueError(f"{value!r} is not a number")
    if not found.is_finite():
        raise ValueError("a number must be finite")
    return found


def measurement_value(value: object) -> Decimal:
    """A measurement's value as the decimal it spells, within bounds every reader holds:
    finite, at most a double's largest magnitude, at most 1,074 decimal places."""
    found = decimal_of(value)
    if not in_bounds(found):
        raise ValueError(
            "a measurement value must lie within ±1.7976931348623157e308 and have at most"
            f" {MAX_PLACES} decimal places"
        )
    return found


def in_bounds(value: Decimal) -> bool:
    """Whether a finite decimal is a measurement value that every reader holds."""
    return abs(value) <= MAX_DOUBLE and places(value) <= MAX_PLACES


def places(value: Decimal) -> int:
    """How many decimal places `value` is spelled with (`Decimal("1.50")` has 2)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "a finite decimal"
    return max(0, -exponent)


def exact_sum(values: Iterable[Decimal], start: Decimal = Decimal(0)) -> Decimal:
    """The exact sum, however many digits it needs (the default context keeps 28)."""
    with decimal.localcontext(_EXACT):
        return sum(values, start)


def add(a: Decimal, b: Decimal) -> Decimal:
    """`a + b`, exactly."""
    return _EXACT.add(a, b)


def significant_digits(value: Decimal) -> int:
    """How many significant digits a decimal has once trailing zeros go (`10.50` has 3)."""
    return 0 if value.is_zero() else len(value.normalize(_EXACT).as_tuple().digits)


def rounded(value: Fraction | Decimal | int) -> Decimal:
    """`value` rounded half-to-even to 15 significant digits."""
    exact = Fraction(value)
    return _SHOWN.divide(Decimal(exact.numerator), Decimal(exact.denominator))


def shown(value: Fraction | Decimal | int) -> float:
    """`value` rounded to 15 significant digits, as the double that holds exactly that
    decimal; beyond a double's range, the largest 15-digit double."""
    found = rounded(value)
    if abs(found) > _LARGEST_SHOWN:
        found = _LARGEST_SHOWN.copy_sign(found)
    return float(found)


def text(value: Fraction | Decimal | int) -> str:
    """`value` to 15 significant digits for people to read: "0.9975", "2000", "3.4e+308"."""
    found = rounded(value)
    if abs(found) <= _LARGEST_SHOWN:
        return f"{float(found):.15g}"
    return f"{found.normalize():g}"


def json_number(value: Decimal) -> int | float:
    """A decimal of at most 15 significant digits as the JSON number that spells it: an
    int when whole (`10`, not `10.0`), else the double whose shortest repr is that decimal."""
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    return float(value)
