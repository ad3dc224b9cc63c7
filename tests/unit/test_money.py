from decimal import Decimal
from fractions import Fraction

import pytest

from shared.core import money


@pytest.mark.parametrize(("code", "digits"), [("EUR", 2), ("USD", 2), ("JPY", 0), ("KWD", 3)])
def test_minor_digits_come_from_the_currency(code: str, digits: int) -> None:
    assert money.minor_digits(code) == digits


@pytest.mark.parametrize("code", ["eur", "EURO", "XYZ", "", "E1R", " EUR"])
def test_unknown_or_malformed_codes_are_refused(code: str) -> None:
    assert not money.is_currency(code)
    with pytest.raises(ValueError, match="ISO 4217"):
        money.check_currency(code)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (Decimal("8000"), "EUR", "8000.00"),
        (Decimal("8000"), "JPY", "8000"),
        (Decimal("-1000.5"), "EUR", "-1000.50"),
        (Decimal("1.5"), "KWD", "1.500"),
        (Decimal("1E+3"), "EUR", "1000.00"),
        (Decimal("-0.00"), "EUR", "0.00"),
        (Decimal("-0.001"), "EUR", "0.00"),
        (0, "JPY", "0"),
        (Fraction(1, 3), "EUR", "0.33"),
        # 30 significant digits: no decimal context may cut them to 28.
        (Decimal("12345678901234567890123456789.5"), "JPY", "12345678901234567890123456790"),
    ],
)
def test_format_money_has_exactly_the_minor_digits(
    amount: money.Exact, currency: str, text: str
) -> None:
    assert money.format_money(amount, currency) == text


@pytest.mark.parametrize(
    ("amount", "currency", "half_even", "half_up"),
    [
        (Decimal("2.525"), "EUR", "2.52", "2.53"),
        (Decimal("2.535"), "EUR", "2.54", "2.54"),
        (Decimal("-2.525"), "EUR", "-2.52", "-2.53"),
        (Decimal("4000.5"), "JPY", "4000", "4001"),
        (Decimal("4001.5"), "JPY", "4002", "4002"),
        (Decimal("0.0005"), "KWD", "0.000", "0.001"),
    ],
)
def test_rounding_is_half_to_even(
    amount: Decimal, currency: str, half_even: str, half_up: str
) -> None:
    rounded = money.to_minor_unit(amount, currency)
    assert rounded == Decimal(half_even)
    assert str(rounded) == half_even
    assert half_up == half_even or rounded != Decimal(half_up)


def test_fits_minor_unit() -> None:
    assert money.fits_minor_unit(Decimal("10.00"), "EUR")
    assert money.fits_minor_unit(Decimal("10.000"), "EUR")
    assert not money.fits_minor_unit(Decimal("10.001"), "EUR")
    assert not money.fits_minor_unit(Decimal("10.5"), "JPY")


def test_parse_money() -> None:
    assert money.parse_money("8000", "EUR") == Decimal("8000.00")
    assert str(money.parse_money("8000", "EUR")) == "8000.00"
    for bad in ["10.001", "abc", "NaN", "Infinity"]:
        with pytest.raises(ValueError):
            money.parse_money(bad, "EUR")
